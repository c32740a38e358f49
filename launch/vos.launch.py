"""Launch one ``vos_node`` (a lifecycle node that configures and activates itself).

    ros2 launch vos_ros vos.launch.py image:=/camera/color/image_raw
    ros2 launch vos_ros vos.launch.py image:=/front/image_raw namespace:=front model:=protonet-s

Arguments, defaults and descriptions come from ``vos_ros.ros.launch_config`` (the same table the
tests use to start the node without ``launch``); ``ros2 launch vos_ros vos.launch.py --show-args``
lists them. Several cameras: include this file once per camera with its own ``namespace`` and
``image``, as ``vos_multi_camera.launch.py`` does.
"""

import os

from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchDescription
from vos_ros.ros.launch_config import (
    EXECUTABLE,
    FASTDDS_TRANSPORT_ENV,
    LAUNCH_ARGUMENTS,
    NODE_NAME,
    PACKAGE,
)


def generate_launch_description() -> LaunchDescription:
    actions = [
        DeclareLaunchArgument(
            arg.name,
            default_value=arg.default,
            description=arg.description,
            **({"choices": list(arg.choices)} if arg.choices else {}),
        )
        for arg in LAUNCH_ARGUMENTS
    ]
    key, value = FASTDDS_TRANSPORT_ENV
    if key not in os.environ:  # keep a transport the user chose
        actions.append(SetEnvironmentVariable(key, value))

    image = LaunchConfiguration("image")
    actions.append(
        LifecycleNode(
            package=PACKAGE,
            executable=EXECUTABLE,
            name=NODE_NAME,
            namespace=LaunchConfiguration("namespace"),
            output="screen",
            emulate_tty=True,
            parameters=[
                LaunchConfiguration("config"),
                {
                    "model": ParameterValue(LaunchConfiguration("model"), value_type=str),
                    "backend": ParameterValue(LaunchConfiguration("backend"), value_type=str),
                    "use_sim_time": ParameterValue(
                        LaunchConfiguration("use_sim_time"), value_type=bool
                    ),
                },
            ],
            remappings=[("image", image), ("image/compressed", [image, "/compressed"])],
            arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
        )
    )
    return LaunchDescription(actions)
