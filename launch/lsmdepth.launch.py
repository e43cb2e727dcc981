"""Launch the lsmdepth depth node, optionally with RViz.

    ros2 launch lsmdepth_ros lsmdepth.launch.py image:=/camera/image_rect \
        camera_info:=/camera/camera_info namespace:=front rviz:=true

Arguments: image, camera_info (topics the node's `image` / `camera_info` are remapped to),
namespace, params_file (default: the package's config/lsmdepth.yaml), model_path (overrides the
params file when not empty), use_sim_time, rviz, fixed_frame (RViz), fastdds_profile,
lifecycle (true: the managed node, brought up with `ros2 lifecycle set <node> configure` then
`activate`, or by a lifecycle manager; default false: the plain node, working at once).
The Fast DDS profile with a 32 MB shared-memory segment is exported to the node's environment
(the node applies it by itself too when started without this file; a profile given here wins).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from launch import LaunchDescription

PACKAGE = "lsmdepth_ros"
EXECUTABLE = "depth_node"
LIFECYCLE_EXECUTABLE = "depth_lifecycle_node"
# The node's own (relative) topic names; remapped from the launch arguments below.
NODE_IMAGE_TOPIC = "image"
NODE_CAMERA_INFO_TOPIC = "camera_info"
PROFILE_ENV_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def _profile_variables() -> tuple:
    """The profile variable the installed Fast DDS reads (the package decides, so that Kilted
    does not warn about the old name); both when the package cannot be imported."""
    try:
        from lsmdepth_ros.ros.transport import profile_variables
    except ImportError:
        return PROFILE_ENV_VARS
    return profile_variables(dict(os.environ))


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def _depth_node(context, *args, **kwargs):
    cfg = lambda name: LaunchConfiguration(name).perform(context)
    overrides = {"use_sim_time": _truthy(cfg("use_sim_time"))}
    if cfg("model_path"):
        overrides["model_path"] = cfg("model_path")
    # The managed node differs from the plain one only in its class and executable.
    node_class, executable = ((LifecycleNode, LIFECYCLE_EXECUTABLE) if _truthy(cfg("lifecycle"))
                              else (Node, EXECUTABLE))
    return [node_class(
        package=PACKAGE,
        executable=executable,
        name="depth_node",
        namespace=cfg("namespace"),
        parameters=[cfg("params_file"), overrides],
        remappings=[(NODE_IMAGE_TOPIC, cfg("image")),
                    (NODE_CAMERA_INFO_TOPIC, cfg("camera_info"))],
        output="screen",
        emulate_tty=True,
    )]


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    config = os.path.join(share, "config")
    arguments = [
        DeclareLaunchArgument("image", default_value="/camera/image_raw",
                              description="Input image topic (rectified; 8-bit colour or mono, YUV "
                                          "4:2:2, Bayer or 16-bit)"),
        DeclareLaunchArgument("camera_info", default_value="/camera/camera_info",
                              description="CameraInfo topic of the input image"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="Namespace of the node (and of RViz)"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(config, "lsmdepth.yaml"),
                              description="Node parameters (YAML)"),
        DeclareLaunchArgument("model_path", default_value="",
                              description="Checkpoint or .onnx; empty keeps the params file's"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="Use /clock (bag replay)"),
        DeclareLaunchArgument("rviz", default_value="false",
                              description="Start RViz with config/lsmdepth.rviz"),
        DeclareLaunchArgument("fixed_frame", default_value="camera_optical_frame",
                              description="RViz fixed frame: the camera's optical frame id"),
        DeclareLaunchArgument("lifecycle", default_value="false",
                              description="true: the managed (lifecycle) node, which waits "
                              "for configure / activate"),
        DeclareLaunchArgument("fastdds_profile",
                              default_value=os.path.join(config, "fastdds_profile.xml"),
                              description="Fast DDS profile (32 MB shared-memory segment)"),
    ]
    profile = [SetEnvironmentVariable(name, LaunchConfiguration("fastdds_profile"))
               for name in _profile_variables()]
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        namespace=LaunchConfiguration("namespace"),
        arguments=["-d", os.path.join(config, "lsmdepth.rviz"),
                   "-f", LaunchConfiguration("fixed_frame")],
        parameters=[{"use_sim_time": LaunchConfiguration("use_sim_time")}],
        condition=IfCondition(LaunchConfiguration("rviz")),
        output="screen",
    )
    return LaunchDescription(arguments + profile + [OpaqueFunction(function=_depth_node), rviz])
