"""Packaging: `pip install .` gives `ccagency`, `ccagency-controller`, `ccagency-broker`, the uwsgi module
`<site-packages>/cc_agency/broker/app.py` and the dashboard's files in `cc_agency/broker/ui/static/`."""
from setuptools import find_packages, setup

from cc_agency.version import AGENCY_VERSION

setup(
    name='cc-agency',
    version=AGENCY_VERSION,
    description='Run RED experiments, batch by batch, on a cluster of Docker engines.',
    long_description=open('README.md').read() if __import__('os').path.exists('README.md') else '',
    long_description_content_type='text/markdown',
    license='AGPL-3.0',
    packages=find_packages(include=['cc_agency', 'cc_agency.*']),
    # the dashboard's static files (served by the broker at /ui/): plain files, no build step
    package_data={'cc_agency.broker': ['ui/static/*.*', 'ui/static/views/*.*']},
    python_requires='>=3.9',
    install_requires=[
        'flask>=2.2',
        'pymongo>=4.3',
        'docker>=7.1',
        'pyyaml>=5.4',
        'bcrypt>=4.0',
        'jsonschema>=4.18',
        'fastjsonschema>=2.16',
        'red-val==9.3.0',
        'pyzmq>=24',
        'requests>=2.31',
        'prometheus_client>=0.17',  # the controller's /metrics (controller.metrics)
    ],
    extras_require={
        'test': ['pytest>=7', 'hypothesis>=6', 'requests>=2.31', 'schemathesis>=4', 'openapi-spec-validator', 'pexpect',
                 'playwright>=1.40'],  # drives Debian's chromium in tests/integration/test_ui.py
    },
    entry_points={
        'console_scripts': [
            'ccagency=cc_agency.cli.main:main',
            'ccagency-controller=cc_agency.controller.main:main',
            'ccagency-broker=cc_agency.broker.devserver:main',
        ],
    },
)
