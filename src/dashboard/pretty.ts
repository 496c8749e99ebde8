/**
 * @internal Re-indents JSON text token by token. Unlike `JSON.stringify(JSON.parse(text))` it
 * keeps the payload exactly as sent: numbers beyond 2^53 keep their digits, duplicate keys and
 * key order stay, string escapes are untouched. The input must be valid JSON (the caller
 * checked). Indentation grows with depth, so a hostile, deeply nested payload could blow the
 * output up quadratically: past `4 × input + 64 KiB` the text is returned as it came.
 */
export function prettyJson(text: string, indent = "  "): string {
  let out = "";
  let depth = 0;
  let inString = false;
  let escaped = false;
  const newline = (): string => `\n${indent.repeat(depth)}`;
  const limit = text.length * 4 + 65_536;
  for (let i = 0; i < text.length; i++) {
    if (out.length > limit) return text;
    const c = text[i]!;
    if (inString) {
      out += c;
      if (escaped) escaped = false;
      else if (c === "\\") escaped = true;
      else if (c === '"') inString = false;
      continue;
    }
    switch (c) {
      case '"':
        inString = true;
        out += c;
        break;
      case "{":
      case "[": {
        // An empty container stays on one line.
        let j = i + 1;
        while (j < text.length && /\s/.test(text[j]!)) j++;
        if (text[j] === (c === "{" ? "}" : "]")) {
          out += c === "{" ? "{}" : "[]";
          i = j;
          break;
        }
        depth++;
        out += c + newline();
        break;
      }
      case "}":
      case "]":
        depth--;
        out += newline() + c;
        break;
      case ",":
        out += c + newline();
        break;
      case ":":
        out += ": ";
        break;
      case " ":
      case "\t":
      case "\n":
      case "\r":
        break;
      default:
        out += c;
    }
  }
  return out;
}
