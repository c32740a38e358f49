"""ROS 2 adapters: the node and the conversions between messages and the core's types.

Modules here import rclpy and the generated interfaces (vos_ros.msg, vos_ros.srv); the core
(everything outside this package) must not import them.
"""
