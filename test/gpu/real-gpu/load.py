"""GPU load for the real-GPU validation (run.sh). Not a test; needs torch and a GPU.

  load.py launcher PID_FILE GIB   writes its own pid to PID_FILE and starts a busy worker as its
                                  child (the way vLLM's API server forks its EngineCore), so the
                                  pid file names a parent of the process that holds GPU memory
  load.py worker GIB busy|idle    holds GIB GiB on the GPU; busy also runs bf16 matmuls in a loop
"""
import os
import subprocess
import sys
import time

mode = sys.argv[1]
if mode == "launcher":
    pid_file, gib = sys.argv[2], sys.argv[3]
    with open(pid_file, "w") as f:
        f.write(str(os.getpid()))
    child = subprocess.Popen([sys.executable, __file__, "worker", gib, "busy"])
    sys.exit(child.wait())

import torch  # noqa: E402  (only the workers touch the GPU)

gib, kind = float(sys.argv[2]), sys.argv[3]
hold = torch.empty(int(gib * 2**30), dtype=torch.uint8, device="cuda")
hold.fill_(1)
if kind == "busy":
    a = torch.randn(8192, 8192, dtype=torch.bfloat16, device="cuda")
    b = torch.randn_like(a)
    c = torch.empty_like(a)
    torch.matmul(a, b, out=c)
torch.cuda.synchronize()
print(f"{kind} worker pid {os.getpid()} (parent {os.getppid()}): holds {gib} GiB, torch reserved {torch.cuda.memory_reserved()} B", flush=True)
with open(f"/tmp/ready-{kind}", "w") as f:
    f.write(str(os.getpid()))
deadline = time.time() + 240
while time.time() < deadline:
    if kind == "busy":
        for _ in range(20):
            torch.matmul(a, b, out=c)
        torch.cuda.synchronize()
    else:
        time.sleep(0.2)
