"""Two cameras, two namespaced ``vos_node`` instances from one launch file.

    ros2 launch vos_ros vos_multi_camera.launch.py \\
        front_image:=/front/image_raw rear_image:=/rear/image_raw

Each node gets its own namespace, so its topics and services are ``/front/vos_node/instances``,
``/rear/vos_node/set_initial_mask`` and so on. Add a camera by adding one more include.
"""

from pathlib import Path

from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

from launch import LaunchDescription

CAMERAS = {"front": "/front/image_raw", "rear": "/rear/image_raw"}  # namespace -> default topic


def generate_launch_description() -> LaunchDescription:
    single = str(Path(__file__).with_name("vos.launch.py"))
    actions = [
        DeclareLaunchArgument(
            "model", default_value="protonet-s", description="Model for all cameras."
        )
    ]
    for namespace, topic in CAMERAS.items():
        actions.append(
            DeclareLaunchArgument(
                f"{namespace}_image",
                default_value=topic,
                description=f"Image topic of the {namespace} camera.",
            )
        )
        actions.append(
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(single),
                launch_arguments={
                    "namespace": namespace,
                    "image": LaunchConfiguration(f"{namespace}_image"),
                    "model": LaunchConfiguration("model"),
                }.items(),
            )
        )
    return LaunchDescription(actions)
