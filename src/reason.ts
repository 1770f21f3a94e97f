/**
 * Text that reaches /status, logs and error messages comes partly from the target (error
 * bodies, parse errors). It is made one line, with control characters escaped, and capped, so a
 * hostile or broken answer can neither forge extra `/status?format=text` lines nor flood a log.
 */

/** The cap for any reason shown in /status or logged as a detail. */
export const REASON_MAX_CHARS = 300;

/** The first line of /status?format=text is at most this long. */
export const HEADLINE_MAX = 200;

/** The first line of /status?format=text: `STATE: CAUSE (since HH:MM:SS)`, cut at HEADLINE_MAX. */
export function statusHeadline(state: string, cause: string, sinceIso: string): string {
  return oneLine(`${state}: ${cause} (since ${sinceIso.slice(11, 19)})`, HEADLINE_MAX);
}

/** How long a cause may be for the first line to hold it whole, around `STATE: ` and the since. */
export function causeRoom(state: string): number {
  return HEADLINE_MAX - statusHeadline(state, '', new Date(0).toISOString()).length;
}

/** One line: CR/LF/TAB and other control characters escaped, capped at `max` characters. */
export function oneLine(text: string, max = REASON_MAX_CHARS): string {
  // Cut first (on a long input the escape pass is then cheap), then escape, then cut again.
  const head = text.length > max * 4 ? text.slice(0, max * 4) : text;
  // eslint-disable-next-line no-control-regex
  const escaped = head.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return ' ';
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
  const trimmed = escaped.trim();
  return trimmed.length > max || head.length < text.length ? `${trimmed.slice(0, max - 1)}…` : trimmed;
}

/** Strips `user:password@` from anything that looks like a URL, so credentials never print. */
export function redactUrl(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^/\s@]*@/gi, '$1***@');
}
