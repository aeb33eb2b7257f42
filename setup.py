"""Packaging for mmgrounding: requirements are read from requirements/*.txt."""
import os.path as osp

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_requirements(name: str) -> list:
    """Return the requirement lines of ``requirements/<name>.txt``."""
    with open(osp.join(HERE, 'requirements', f'{name}.txt')) as f:
        lines = (line.split('#', 1)[0].strip() for line in f)
        return [line for line in lines if line]


def get_version() -> str:
    scope = {}
    with open(osp.join(HERE, 'mmgrounding', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='mmgrounding',
    version=get_version(),
    description='Pixel-grounded large multimodal models (GLaMM, LLaVA-Grounding) '
    'for MMDetection',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    python_requires='>=3.10',
    install_requires=read_requirements('mminstall') +
    read_requirements('runtime'),
    extras_require={
        'eval': read_requirements('eval'),
        'tests': read_requirements('tests'),
        'demo': read_requirements('demo'),
        'dist': read_requirements('dist'),
        'all': read_requirements('eval') + read_requirements('tests') +
        read_requirements('demo'),
    },
    license='Apache License 2.0',
    zip_safe=False,
)
