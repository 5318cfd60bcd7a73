"""The PyTorch peer (../shared/tools/peer_bench): where it lives and how a measurement of it is started.

compare_peer.py and onednn_kernels.py both run it; it runs in its own venv (see its README), never in ours.
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
PEER_DIR = os.path.abspath(os.path.join(HERE, "..", "..", "shared", "tools", "peer_bench"))
PEER_PYTHON = "/tmp/peerenv/bin/python"


def require(peer_python, alternative=""):
    """Stop with one line when the peer or its venv is missing (`alternative`: what to do instead)."""
    if not os.path.isdir(PEER_DIR) or not os.path.exists(peer_python):
        raise SystemExit("needs %s and its venv %s (see its README)%s" % (PEER_DIR, peer_python, alternative))


def command(peer_python, arch, mode, runs, warmup, threads, *extra):
    """The peer's command line for one architecture in `mode` (fp32: peer_bench.py; bf16: its CPU autocast
    harness, bench/peer_bf16.py), one attempt, no FLOP count; run it with cwd=PEER_DIR."""
    script = os.path.join(HERE, "peer_bf16.py") if mode == "bf16" else os.path.join(PEER_DIR, "peer_bench.py")
    return [peer_python, script, "--archs", arch, "--runs", str(runs), "--warmup", str(warmup), "--threads",
            str(threads), "--retries", "0", "--no-flops"] + list(extra)
