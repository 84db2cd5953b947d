"""Options of the integration tests run through pytest (see meson.build)."""


def pytest_addoption(parser):
    parser.addoption("--xg2gd", action="store", help="path of the built xg2gd")
