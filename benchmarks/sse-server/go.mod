module vllm-probe/benchmarks/sse-server

go 1.22
