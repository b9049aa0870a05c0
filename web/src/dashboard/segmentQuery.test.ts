import { describe, expect, it } from "vitest";
import { complete, conditionCount, newAttribute, newEvent, newGroup, operatorsFor, typedValue } from "./segmentQuery";

describe("segment builder values", () => {
  it("reads what was typed as the DSL's JSON values", () => {
    expect(typedValue("pro", "equals")).toBe("pro");
    expect(typedValue("3", "equals")).toBe(3);
    expect(typedValue("true", "not_equals")).toBe(true);
    expect(typedValue("a, 2, false", "in")).toEqual(["a", 2, false]);
    expect(typedValue("2.5", "gte")).toBe(2.5);
    expect(typedValue("42", "contains")).toBe("42");
  });

  it("offers the operators a field's kind takes", () => {
    expect(operatorsFor("verified")).toEqual(["equals", "not_equals"]);
    expect(operatorsFor("last_seen_at")).not.toContain("equals");
    expect(operatorsFor("plan")).toHaveLength(12);
  });

  it("is a query only without empty groups", () => {
    expect(complete(newGroup())).toBe(false);
    const nested = newGroup("AND", [newAttribute(), newGroup("OR")]);
    expect(complete(nested)).toBe(false);
    nested.conditions[1] = newGroup("OR", [newEvent("purchase"), newAttribute()]);
    expect(complete(nested)).toBe(true);
    expect(conditionCount(nested)).toBe(3);
  });
});
