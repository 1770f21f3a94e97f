"""NVML's own reading (nvidia-ml-py), printed as JSON, for comparison with vllm-probe (run.sh)."""
import json
import time

import pynvml as N


def s(v):
    return v.decode() if isinstance(v, bytes) else v


def safe(fn):
    try:
        return fn()
    except Exception as e:  # a field this GPU/driver lacks must not hide the others
        return f"error: {e!r}"


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode().strip()
    except OSError:
        return None


N.nvmlInit()
out = {"time": time.time(), "driver": s(N.nvmlSystemGetDriverVersion()), "nvml": s(N.nvmlSystemGetNVMLVersion()), "gpus": []}
for i in range(N.nvmlDeviceGetCount()):
    h = N.nvmlDeviceGetHandleByIndex(i)
    m1 = N.nvmlDeviceGetMemoryInfo(h)
    g = {
        "index": i,
        "uuid": s(N.nvmlDeviceGetUUID(h)),
        "name": s(N.nvmlDeviceGetName(h)),
        "memory_v1": {"total": m1.total, "free": m1.free, "used": m1.used},
        "memory_v2": safe(lambda: (lambda m: {"total": m.total, "reserved": m.reserved, "free": m.free, "used": m.used})(N.nvmlDeviceGetMemoryInfo(h, version=N.nvmlMemory_v2))),
        "utilization": safe(lambda: (lambda u: {"gpu": u.gpu, "memory": u.memory})(N.nvmlDeviceGetUtilizationRates(h))),
        "power_mw": safe(lambda: N.nvmlDeviceGetPowerUsage(h)),
        "enforced_power_limit_mw": safe(lambda: N.nvmlDeviceGetEnforcedPowerLimit(h)),
        "temperature_c": safe(lambda: N.nvmlDeviceGetTemperature(h, N.NVML_TEMPERATURE_GPU)),
        "clock_sm_mhz": safe(lambda: N.nvmlDeviceGetClockInfo(h, N.NVML_CLOCK_SM)),
        "clock_mem_mhz": safe(lambda: N.nvmlDeviceGetClockInfo(h, N.NVML_CLOCK_MEM)),
        "pstate": safe(lambda: N.nvmlDeviceGetPerformanceState(h)),
        "mig_mode": safe(lambda: N.nvmlDeviceGetMigMode(h)[0]),
        "processes": [{"pid": p.pid, "used": p.usedGpuMemory, "cmdline": cmdline(p.pid)} for p in N.nvmlDeviceGetComputeRunningProcesses(h)],
    }
    out["gpus"].append(g)
print(json.dumps(out, indent=1))
