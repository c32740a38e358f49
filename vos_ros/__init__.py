"""vos_ros: real-time semi-supervised multi-instance video object segmentation for ROS 2.

The core (engine, model, metrics, bag I/O, image conversion) imports without rclpy; the ROS
adapters live in :mod:`vos_ros.ros` and are imported only by the node.
"""

# The rosidl-generated interface modules (vos_ros.msg, vos_ros.srv) are installed into the
# environment's site-packages/vos_ros/ by the CMake build, while the pure-Python package may be
# imported from a source checkout. extend_path merges both folders into one package.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

__version__ = "0.1.0"
