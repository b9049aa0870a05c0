// The segment DSL as the builder edits it (docs/analytics.md): plain JSON, sent as is to
// /admin/api/segments/preview and saved with the segment. The server validates every node.

export type GroupOperator = "AND" | "OR";
export interface Timeframe {
  type: "relative";
  value: number;
  unit: "days" | "hours";
}
export interface CountRule {
  operator: string;
  value: number;
}
export interface AttributeCondition {
  type: "user_attribute";
  field: string;
  operator: string;
  value?: unknown;
}
export interface EventCondition {
  type: "event";
  eventName: string;
  field?: string;
  operator?: string;
  value?: unknown;
  timeframe?: Timeframe;
  count?: CountRule;
}
export interface Group {
  operator: GroupOperator;
  conditions: Node[];
}
export type Node = Group | AttributeCondition | EventCondition;

export const MAX_DEPTH = 5;

export const OPERATORS: Record<string, string> = {
  equals: "is",
  not_equals: "is not",
  gt: ">",
  gte: "≥",
  lt: "<",
  lte: "≤",
  contains: "contains",
  not_contains: "does not contain",
  in: "is one of",
  not_in: "is none of",
  exists: "is set",
  not_exists: "is not set",
};
export const COUNT_OPERATORS = ["gte", "gt", "equals", "not_equals", "lt", "lte"];

type Kind = "json" | "text" | "time" | "bool";
// The built-in fields of a user, as replyhq.segments.dsl knows them.
export const BUILT_IN: Record<string, Kind> = {
  user_id: "text",
  name: "text",
  email: "text",
  platform: "text",
  locale: "text",
  verified: "bool",
  created_at: "time",
  last_seen_at: "time",
};
const KIND_OPERATORS: Record<Kind, string[]> = {
  json: Object.keys(OPERATORS),
  text: ["equals", "not_equals", "contains", "not_contains", "in", "not_in", "exists", "not_exists"],
  time: ["gt", "gte", "lt", "lte", "exists", "not_exists"],
  bool: ["equals", "not_equals"],
};

export function kindOf(field: string): Kind {
  return BUILT_IN[field] ?? "json";
}

export function operatorsFor(field: string): string[] {
  return KIND_OPERATORS[kindOf(field)];
}

export function isGroup(node: Node): node is Group {
  return !("type" in node);
}

export function needsValue(operator: string | undefined): boolean {
  return operator !== undefined && operator !== "exists" && operator !== "not_exists";
}

/** What a person typed, as the JSON value the DSL expects: lists for in / not_in (comma
 * separated), numbers for comparisons, true / false and numbers recognised for equality. */
export function typedValue(text: string, operator: string): unknown {
  if (operator === "in" || operator === "not_in") {
    return text
      .split(",")
      .map((part) => part.trim())
      .filter(Boolean)
      .map((part) => scalar(part));
  }
  if (["gt", "gte", "lt", "lte"].includes(operator)) {
    const number = Number(text);
    return text.trim() !== "" && Number.isFinite(number) ? number : text;
  }
  if (operator === "contains" || operator === "not_contains") return text;
  return scalar(text);
}

function scalar(text: string): unknown {
  const trimmed = text.trim();
  if (trimmed === "true") return true;
  if (trimmed === "false") return false;
  if (/^-?\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed);
  return text;
}

export function valueText(value: unknown): string {
  if (value === undefined || value === null) return "";
  if (Array.isArray(value)) return value.map((v) => String(v)).join(", ");
  if (typeof value === "object") return "";
  return String(value);
}

export function newAttribute(field = "plan"): AttributeCondition {
  return { type: "user_attribute", field, operator: "equals", value: "" };
}

export function newEvent(eventName: string): EventCondition {
  return { type: "event", eventName };
}

export function newGroup(operator: GroupOperator = "AND", conditions: Node[] = []): Group {
  return { operator, conditions };
}

/** How many conditions (not groups) the query holds: the server takes at most 50. */
export function conditionCount(node: Node): number {
  return isGroup(node) ? node.conditions.reduce((n, c) => n + conditionCount(c), 0) : 1;
}

/** A group with an empty group anywhere is not a query yet (the server refuses it). */
export function complete(group: Group): boolean {
  return group.conditions.length > 0 && group.conditions.every((c) => !isGroup(c) || complete(c));
}
