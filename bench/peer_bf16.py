"""The PyTorch peer (../shared/tools/peer_bench) in its bfloat16 mode: CPU autocast, so a bf16 row compares
bf16 with bf16.

    /tmp/peerenv/bin/python bench/peer_bf16.py --archs linknet_r18 --runs 5 [--channels-last]

peer_bench.py's models, sizes, flags and JSON record, with each measurement under
torch.autocast("cpu", dtype=torch.bfloat16): inference as a whole, and in training the forward pass and
the loss (PyTorch's recipe: backward and the Adam step outside autocast, float32 master weights).
Runs in the peer's venv, not ours; compare_peer.py --precisions fp32,bf16 calls it.
"""
import os
import sys
import time

PEER_DIR = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "tools",
                                        "peer_bench"))
sys.path.insert(0, os.environ.get("PEER_BENCH_DIR", PEER_DIR))

import bench_common  # noqa: E402  (the peer's CPU-contention probe)
import peer_bench  # noqa: E402  (the peer's own harness: its models, inputs and record)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

AUTOCAST = dict(device_type="cpu", dtype=torch.bfloat16)
_fp32_inference, _fp32_run_arch = peer_bench.bench_inference, peer_bench.run_arch


def bench_inference(*args, **kwargs):
    with torch.autocast(**AUTOCAST):
        return _fp32_inference(*args, **kwargs)


def bench_train(model, classes, batch, size, warmup, runs, lr, channels_last):
    """peer_bench.bench_train with the forward pass and the loss under bfloat16 autocast."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(0)
    x = peer_bench._input(batch, size, channels_last, g)
    y = torch.randint(0, classes, (batch, size, size), generator=g)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(**AUTOCAST):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    for _ in range(warmup):
        step()
    times, loss = [], None
    with bench_common.CpuProbe() as probe:
        for _ in range(runs):
            t0 = time.perf_counter()
            loss = step()
            times.append(time.perf_counter() - t0)
    return times, float(loss.detach()), probe.result


def run_arch(name, args):
    record = _fp32_run_arch(name, args)
    record.update(precision="bf16", autocast="torch.autocast('cpu', dtype=torch.bfloat16)")
    return record


peer_bench.bench_inference, peer_bench.bench_train, peer_bench.run_arch = bench_inference, bench_train, run_arch

if __name__ == "__main__":
    sys.exit(peer_bench.main())
