"""rrl_jax: RRL-Net for cross-spectral patch matching in JAX/Flax."""
from setuptools import find_packages, setup

setup(
    name='rrl_jax',
    version='0.1.0',
    description=('JAX/Flax reimplementation of RRL-Net (Yu et al., Information '
                 'Fusion 2024) for cross-spectral image patch matching.'),
    packages=find_packages(include=['rrl_jax', 'rrl_jax.*', 'launch', 'launch.*',
                                    'configs', 'configs.*']),
    python_requires='>=3.11',
    install_requires=[
        'jax>=0.6',
        'flax>=0.10.4',
        'optax>=0.2.4',
        'orbax-checkpoint>=0.11',
        'numpy>=1.26',
        'tensorflow-datasets>=4.9.7',
        'array_record>=0.5',
        'grain>=0.2.18',
        'absl-py>=2.0',
        'ml-collections>=1.0',
        'h5py>=3.10',
        'scikit-learn>=1.4',
        'scipy>=1.11',
        'matplotlib>=3.8',
        'tqdm>=4.66',
        'tensorboardX>=2.6',
        'opencv-python-headless>=4.9',
        'flatbuffers>=24.3',  # jax.export serialization (launch.export)
    ],
    extras_require={
        'test': ['pytest>=8', 'pytest-xdist>=3.8'],
        'cuda': ['jax[cuda12]'],
        'tpu': ['jax[tpu]'],
        'torch': ['torch>=2.1'],  # KGL-Net's PyTorch weights (launch.convert)
    },
)
