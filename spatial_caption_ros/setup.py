"""ament_python package: spatial_caption_ros."""

from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'spatial_caption_ros'


def files(pattern: str) -> list[str]:
    return [f for f in glob(pattern) if os.path.isfile(f)]


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={PACKAGE: ['data/knowledge/*.yaml', 'data/grammars/*', 'data/*.yaml']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', files('launch/*.py')),
        (f'share/{PACKAGE}/config', files('config/*')),
        (f'share/{PACKAGE}/models', files('models/*.yaml')),
    ],
    install_requires=['setuptools'],
    extras_require={'ray': ['ray==2.60.0']},
    zip_safe=False,
    maintainer='spatial_caption_ros maintainers',
    maintainer_email='maintainers@spatial-caption.invalid',
    description='Spatially grounded scene graphs and captions from camera images for ROS 2.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'image_source_node = spatial_caption_ros.nodes.image_source_node:main',
            'perception_node = spatial_caption_ros.nodes.perception_node:main',
            'scene_graph_node = spatial_caption_ros.nodes.scene_graph_node:main',
            'caption_node = spatial_caption_ros.nodes.caption_node:main',
            'visualization_node = spatial_caption_ros.nodes.visualization_node:main',
            'memory_node = spatial_caption_ros.nodes.memory_node:main',
            'spatial-caption-run = spatial_caption_ros.cli.run:main',
            'spatial-caption-config = spatial_caption_ros.cli.config:main',
            'spatial-caption-bench = spatial_caption_ros.tools.bench_perception:main',
            'spatial-caption-build-engine = spatial_caption_ros.cli.build_engine:main',
            'spatial-caption-models = spatial_caption_ros.cli.models:main',
            'spatial-caption-evaluate = spatial_caption_ros.cli.evaluate:main',
            'spatial-caption-eval-captions = spatial_caption_ros.cli.evaluate_captions:main',
            'spatial-caption-bench-graph = spatial_caption_ros.tools.bench_graph:main',
            'spatial-caption-bench-memory = spatial_caption_ros.tools.bench_memory:main',
            'spatial-caption-dds-check = spatial_caption_ros.tools.dds_check:main',
            'spatial-caption-soak = spatial_caption_ros.tools.soak:main',
            'spatial-caption-bag = spatial_caption_ros.cli.bag:main',
        ],
    },
)
