"""The anime-core plugin contract, run on this plugin as installed (entry point ``example``)."""

from anime_core.testing import PluginContract


class TestExampleContract(PluginContract):
    plugin = "example"
