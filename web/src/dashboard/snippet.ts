// A search hit's snippet_html (the passage HTML-escaped, matched words in <mark>…</mark>:
// docs/search.md) as plain text parts, shown as React text and <mark> elements: never inserted
// as HTML, so nothing in a message can become markup here whatever the server sends.
export interface SnippetPart {
  text: string;
  mark: boolean;
}

const ENTITIES: Record<string, string> = { "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#39;": "'", "&#x27;": "'", "&amp;": "&" };

/** One pass, so "&amp;lt;" is the text "&lt;", not "<". */
function unescape(text: string): string {
  return text.replace(/&(?:lt|gt|quot|amp|#39|#x27);/g, (entity) => ENTITIES[entity] ?? entity);
}

export function snippetParts(html: string): SnippetPart[] {
  const parts: SnippetPart[] = [];
  let mark = false;
  for (const piece of html.split(/(<\/?mark>)/)) {
    if (piece === "<mark>") mark = true;
    else if (piece === "</mark>") mark = false;
    else if (piece) parts.push({ text: unescape(piece), mark });
  }
  return parts;
}
