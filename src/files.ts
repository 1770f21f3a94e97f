/**
 * Reading the small local files the daemon is pointed at (config, web config, API key, TLS
 * files): only regular files, only up to a cap. A FIFO or a device named by mistake would block
 * the event loop forever on a plain readFileSync; a huge file would be read whole.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { FileReadError } from './errors.js';

/** Reads `path` as UTF-8 when it is a regular file of at most `maxBytes`. Throws FileReadError. */
export function readSmallFile(path: string, maxBytes = 1024 * 1024): Buffer {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO with no writer would otherwise block right here.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    throw new FileReadError(path, code, `cannot read: ${code}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new FileReadError(path, 'ENOTREG', 'not a regular file (a FIFO, socket, device or directory)');
    if (st.size > maxBytes) throw new FileReadError(path, 'EFBIG', `larger than ${maxBytes} bytes`);
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < st.size) {
      const n = readSync(fd, buf, off, st.size - off, off);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off);
  } finally {
    closeSync(fd);
  }
}
