"""Importing lgrec changes nothing process-wide."""

import json
import os
import subprocess
import sys


def test_import_leaves_the_environment_and_heavy_extras_alone():
    code = (
        "import json, os, sys; before = dict(os.environ); import lgrec, lgrec.cli; "
        "print(json.dumps({'env_changed': dict(os.environ) != before, "
        "'loaded': sorted(m for m in ('onnxruntime', 'tokenizers', 'PIL', 'matplotlib', 'dask') if m in sys.modules)}))"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"env_changed": False, "loaded": []}
