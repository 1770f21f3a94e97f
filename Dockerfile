# syntax=docker/dockerfile:1
#
# vllm-probe container image. Build it from the repository root:
#
#   docker build -t REGISTRY/vllm-probe:0.1.0 .
#
# The image is not published anywhere: build it and push it to your own registry
# (docs/deploy.md). It runs as the unprivileged "node" user, writes nothing to its file system
# (read-only root file systems are fine), and runs without a GPU: nvidia-smi is not in the
# image, the NVIDIA container toolkit mounts it at run time (docker run --gpus ... or
# --runtime nvidia with NVIDIA_VISIBLE_DEVICES and NVIDIA_DRIVER_CAPABILITIES=utility). Without
# it the daemon reports "no GPU" once and keeps probing vLLM.
#
# Base image: Node.js 26, the Active LTS line since October 2026, on Debian slim. Pin a digest
# (node:26-slim@sha256:...) for reproducible builds.
ARG NODE_IMAGE=node:26-slim

# ---- build: compile TypeScript, then drop the dev dependencies --------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# `npm run build` compiles src/ with tsc, so the sources are copied first. (There is no
# `prepare` script: npm warns about install scripts on every global install of the package.)
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm ci --no-audit --no-fund \
 && npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && npm cache clean --force

# ---- runtime: production dependencies, dist/ and bin/ only -----------------------------------
FROM ${NODE_IMAGE}
# MALLOC_ARENA_MAX=2: glibc otherwise gives each thread that mallocs (libuv's pool reading /proc,
# V8's helpers) an arena of its own, and the daemon's RSS creeps up through them: 82.9 MB after
# 10 min at defaults without it, 77.3 MB with it, same run (docs/benchmarks.md, benchmark 3).
ENV MALLOC_ARENA_MAX=2
# `serve` also starts itself again with --v8-pool-size=1 on this image's Node, which has
# process.execve: one V8 helper thread instead of four, and three arenas fewer (src/main.ts).
ENV NODE_ENV=production
WORKDIR /app
# Files stay owned by root and read-only to the daemon's user.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin
# The documented config path. The example holds every default (a sidecar next to vLLM on
# 127.0.0.1:8000); mount your own file over it (Kubernetes: a ConfigMap at /etc/vllm-probe).
COPY config/vllm-probe.example.yaml /etc/vllm-probe/config.yaml
# uid/gid 1000 is the "node" user of the official Node.js images; numeric so that Kubernetes
# runAsNonRoot can verify it without looking the name up.
USER 1000:1000
# /metrics, /status, /healthz, /readyz, POST /-/reload (config key `listen`).
EXPOSE 9470
# There is no curl in the slim image; Node's fetch is enough. /healthz never depends on vLLM.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9470/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Other commands run with the same entrypoint, e.g. `docker run IMAGE emulate --listen 0.0.0.0:8000`.
ENTRYPOINT ["node", "/app/bin/vllm-probe.js"]
CMD ["serve", "--config", "/etc/vllm-probe/config.yaml"]
