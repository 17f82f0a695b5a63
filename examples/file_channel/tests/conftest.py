# The gateway's test helpers: open_test_gateway, smsc_simulator, fake_clock fixtures.
pytest_plugins = ["gateway.testing.pytest_plugin"]
