"""The anime-core plugin contract, run on this plugin as installed (entry point ``example``).

pytest shows one line per check: ``test_contract.py::TestExampleContract::test_contract[load] PASSED``,
``...[light]``, ``...[references]``, ``...[names]``, ``...[configs]``, ``...[models]`` and so on.
"""

from anime_core.testing import PluginContract


class TestExampleContract(PluginContract):
    plugin = "example"
