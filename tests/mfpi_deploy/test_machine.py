from __future__ import annotations

import json
import subprocess
import sys

from mfpi_deploy.machine import CpuDetails, cpu_details


def test_cpu_details_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
        "model name\t: Fancy CPU 9000\nflags\t\t: fpu avx2 fma avx512f hypervisor\n\n"
        "processor\t: 1\nflags\t\t: sse avx512_bf16\n"
    )
    cpu = cpu_details(info)
    assert cpu == CpuDetails(
        "Fancy CPU 9000",
        ("avx2", "fma", "avx512f"),  # the first processor's flags only
        "AuthenticAMD family 25 model 17",
        True,
        ("avx2", "avx512f", "fma", "fpu", "hypervisor"),
    )
    assert cpu.one_line() == "Fancy CPU 9000 (AuthenticAMD family 25 model 17), avx2/fma/avx512f"
    missing = cpu_details(tmp_path / "missing")
    assert missing.name and (missing.features, missing.ident, missing.virtualized) == ((), "", None)


def test_conditions_as_one_json_line_for_scripts():
    out = subprocess.run([sys.executable, "-m", "mfpi_deploy.machine"], capture_output=True, text=True, check=True)
    facts = json.loads(out.stdout)
    assert facts["cpu"] == cpu_details().name and facts["logical_cores"] >= 1
    assert facts["cpu_features"] == list(cpu_details().features) and len(facts["load_average"]) in (0, 3)
