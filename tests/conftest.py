import pytest

from sim.rtl.toolchain import setup_environment

setup_environment()


def pytest_addoption(parser):
    parser.addoption("--sim", default="verilator", choices=["verilator", "icarus"],
                     help="HDL simulator for cocotb benches (default: verilator)")


@pytest.fixture(scope="session")
def hdl_sim(request):
    return request.config.getoption("--sim")
