"""The testing kit's fixtures (mesh, model_server, chaos) for the tests of this folder."""

pytest_plugins = ["agentmesh.testing.plugin"]
