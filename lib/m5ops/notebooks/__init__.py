"""The task notebooks, the Voila dashboard and ``explore.ipynb``, shipped inside the package.

The checkout's top-level ``notebooks/`` is a link to this folder (JupyterLab opens it there),
so the wheel, an editable install and a checkout all find the same files, and there is one
copy of each notebook.
"""
from pathlib import Path

NOTEBOOKS_DIR = Path(__file__).resolve().parent


def notebook_path(name: str) -> Path:
    """The shipped notebook ``name`` (``train.ipynb``); FileNotFoundError naming it if absent."""
    path = NOTEBOOKS_DIR / name
    if not path.is_file():
        raise FileNotFoundError(2, f"notebook {name} is not in {NOTEBOOKS_DIR}: reinstall m5ops", str(path))
    return path
