"""Installs the job's packages; remote workers receive them with --setup_file=./setup.py."""
import setuptools

setuptools.setup(
    name='beam-image-inference',
    version='0.1.0',
    description='Batch image labeling and embedding with Apache Beam and MobileNet.',
    packages=setuptools.find_packages(include=['pipeline', 'pipeline.*', 'transforms', 'transforms.*']),
    python_requires='>=3.10',
    # Workers get exact versions from requirements.txt or the container; these are the floors.
    install_requires=[
        'apache-beam[gcp]>=2.60',
        'tensorflow>=2.16',
        'tensorflow-transform>=1.16',  # --analyze_embeddings
        'tensorflow-hub>=0.16',
        'ai-edge-litert>=1.2',
        'pyarrow>=14',
        'pillow>=10',
        'numpy>=1.26',
        'tqdm>=4.60',  # the launcher's progress bar
        'matplotlib>=3.8',  # the run report's charts
        'psutil>=5.9',  # the estimate's memory watch
        'pylance>=0.20',  # python -m pipeline.export --to lance
    ],
)
