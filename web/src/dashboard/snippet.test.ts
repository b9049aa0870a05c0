import { describe, expect, it } from "vitest";
import { snippetParts } from "./snippet";

describe("search snippets", () => {
  it("marks the matched words", () => {
    expect(snippetParts("my <mark>parcel</mark> is <mark>late</mark>")).toEqual([
      { text: "my ", mark: false },
      { text: "parcel", mark: true },
      { text: " is ", mark: false },
      { text: "late", mark: true },
    ]);
  });

  it("gives escaped markup back as text, never as markup", () => {
    expect(snippetParts("&lt;img src=x onerror=alert(1)&gt; <mark>refund</mark>")).toEqual([
      { text: "<img src=x onerror=alert(1)> ", mark: false },
      { text: "refund", mark: true },
    ]);
    expect(snippetParts("a &amp;lt;b&amp;gt; &amp; c")).toEqual([{ text: "a &lt;b&gt; & c", mark: false }]);
  });
});
