#!/usr/bin/env node
// Thin launcher: the compiled entry point lives in dist/ (built by `npm ci` through `prepare`).
import '../dist/main.js';
