/**
 * The few error types shared across homes. Expected failures of a source (vLLM, nvidia-smi,
 * the host) are SourceErrors with a closed reason; "nothing to report" is a NoDataError.
 */

/** Closed set of reasons a source read fails; used as the `reason` label. */
export type SourceErrorReason =
  | 'timeout'
  | 'connect_error'
  | 'http_status'
  | 'too_large'
  | 'parse_error'
  | 'missing_binary'
  | 'exit_status'
  | 'unparsable'
  | 'no_gpu'
  | 'no_procfs'
  | 'not_visible'
  | 'internal';

/** An expected failure of a source, with a reason for the label and words for /status. */
export class SourceError extends Error {
  /** The HTTP status the source answered, for reason `http_status`: callers classify by it, not by the words. */
  readonly status: number | undefined;

  constructor(
    readonly reason: SourceErrorReason,
    message: string,
    options?: { cause?: unknown; status?: number },
  ) {
    super(message, options);
    this.name = 'SourceError';
    this.status = options?.status;
  }
}

/**
 * Thrown when there is legitimately nothing to collect: no GPU on this machine, no Linux /proc,
 * or vLLM's processes not visible from here (a sidecar without a shared PID namespace).
 */
export class NoDataError extends Error {
  override name = 'NoDataError';
  /** The source_errors label: no_gpu (a CPU-only machine), no_procfs (not Linux) or not_visible. */
  readonly reason: Extract<SourceErrorReason, 'no_gpu' | 'no_procfs' | 'not_visible'>;

  constructor(message: string, options?: { cause?: unknown; reason?: 'no_gpu' | 'no_procfs' | 'not_visible' }) {
    super(message, options);
    this.reason = options?.reason ?? 'no_gpu';
  }
}

/** Why a local file (config, key, certificate) cannot be used, with the errno code. */
export class FileReadError extends Error {
  constructor(
    readonly path: string,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'FileReadError';
  }
}
