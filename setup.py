from setuptools import find_packages, setup

setup(
    name="stompd",
    version="0.1.0",
    description="A STOMP 1.0/1.1/1.2 message broker on Twisted",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    packages=find_packages(exclude=["tests", "tests.*", "benchmarks"]) + ["twisted.plugins"],
    package_data={
        "twisted": ["plugins/stompd_plugin.py"],
        "stompd.transport": ["static/*"],
        "stompd.management": ["static/*"],
    },
    install_requires=[
        "Twisted[tls]>=23.10",
        "autobahn>=23.1",
        # 1.6 reconnects differently from 1.4; the store is written for 1.6.
        "txredisapi==1.6.0",
        "msgpack>=1.0",
        # txredisapi parses replies with it when installed; its own parser
        # takes a reactor turn for each string of a reply.
        "hiredis>=2.0",
        "zope.interface>=6.0",
        "service-identity>=23.1",
        "prometheus-client>=0.17",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-twisted>=1.14",
            "hypothesis>=6.100",
            "stomp.py>=8.1",
            "pytest-timeout>=2.3",
            "websocket-client>=1.6",
        ],
    },
    entry_points={
        "console_scripts": ["stompd-admin = stompd.admin:main"],
        "stompd.storage": [
            "memory = stompd.storage.memory:create_store",
            "redis = stompd.storage.redis:create_store",
        ],
        "stompd.auth": ["users = stompd.auth:create_authenticator"],
        "stompd.connectors": [
            "relay = stompd.connectors.relay:create_connector",
            "fanout = stompd.connectors.fanout:create_connector",
        ],
        "stompd.discovery": [
            "static = stompd.connectors.static:create_agent",
            "redis = stompd.connectors.redis_discovery:create_agent",
            "multicast = stompd.connectors.multicast:create_agent",
        ],
    },
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        "Topic :: System :: Networking",
    ],
)
