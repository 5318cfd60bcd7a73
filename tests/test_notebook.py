"""play-with-me.ipynb: stored clean, and runs end to end (nbclient, this venv's kernel) on the tiny trained run."""
import os
import re
import shutil

from tests.conftest import ROOT

NOTEBOOK = os.path.join(ROOT, "play-with-me.ipynb")


def test_notebook_is_stored_without_outputs():
    import nbformat
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)
    assert 'os.environ.get("SEGMENTOR_RUN")' in code[0].source and 'os.environ.get("SEGMENTOR_DATA")' in code[0].source


def test_notebook_executes_against_the_tiny_run(tiny_run, monkeypatch, tmp_path):
    import nbformat
    from nbclient import NotebookClient
    run_b = str(tmp_path / "second_run")
    shutil.copytree(tiny_run["folder"], run_b)  # a second run folder to compare with
    monkeypatch.setenv("SEGMENTOR_RUN", tiny_run["folder"])  # the kernel inherits this environment
    monkeypatch.setenv("SEGMENTOR_RUN_B", run_b)
    monkeypatch.setenv("PYTHONWARNINGS", "ignore")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": ROOT}})
    client.execute()  # raises CellExecutionError on any failing cell
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    text = "".join(output.get("text", "") for output in outputs)
    assert "run: %s" % tiny_run["folder"] in text
    assert "resnet_v1_18_LinkNet step 6" in text and "per-class IoU:" in text
    assert "scales 0.75,1,1.25+flip: mIoU" in text
    for key, folder in (("A", tiny_run["folder"]), ("B", run_b)):  # the comparison names both runs
        assert re.search(r"%s: %s \(.*\): mIoU [\d.]+ %% \(95 %% CI" % (key, re.escape(os.path.basename(folder))), text)
    figures = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(figures) >= 3  # the overlays, the per-class IoU bars, the two runs side by side


def test_kernel_is_this_interpreter():
    """nbclient's 'python3' kernel must start this venv's python (where TensorFlow is installed)."""
    import sys
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    spec = KernelSpecManager().get_kernel_spec("python3")
    command = KernelManager(kernel_name="python3").format_kernel_cmd()
    assert spec.language == "python" and command[0] in (sys.executable, os.path.realpath(sys.executable))
