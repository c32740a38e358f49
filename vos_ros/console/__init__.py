"""``vos-ros console``: a web console for the node, with an rclpy node inside the web server.

- live view (:mod:`.live_view`): camera frames with the node's masks drawn, newest frame only
  over a WebSocket; ``/diagnostics`` beside it; targets picked on a paused frame and sent to the
  node's services with that frame's stamp;
- offline page (:mod:`.offline_jobs`): an uploaded video or bag run through the engine and the
  evaluator;
- security (:mod:`.security`): loopback by default, a token for any other address, checked
  uploads.

The package imports without ROS (like the rest of the core); its ROS side, the console's own rclpy
node, lives with the other ROS adapters in :mod:`vos_ros.ros.console_bridge`. The web layer is
:mod:`.app` (FastAPI, served by uvicorn).
"""
