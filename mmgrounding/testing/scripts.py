"""Import a repository script (tools/, demo/) as a module, for tests."""
import importlib.util
import os.path as osp
from types import ModuleType

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_script(relative_path: str) -> ModuleType:
    """Execute ``REPO_ROOT/relative_path`` and return it as a module.

    Scripts under ``tools/`` and ``demo/`` are not packages; tests call their
    functions (``main``, ``evaluate_baselines`` ...) through this loader.
    """
    path = osp.join(REPO_ROOT, relative_path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'no script at {path}')
    name = '_script_' + osp.splitext(relative_path)[0].replace('/', '_')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
