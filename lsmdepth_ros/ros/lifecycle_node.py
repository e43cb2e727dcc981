"""The managed (lifecycle) variant of depth_node, for systems brought up by a lifecycle manager.

    python -m lsmdepth_ros.ros.lifecycle_node --ros-args -p model_path:=model.pt
    ros2 lifecycle set /depth_node configure      # loads the model
    ros2 lifecycle set /depth_node activate       # publishers, (lazy) subscriptions, inference

Transitions:
  configure   loads the model; a missing or bad model returns FAILURE with the reason logged,
              the node stays unconfigured and the process keeps running (fix model_path, retry)
  activate    starts the pipeline (publishers, diagnostics, inference thread, inputs while
              someone listens)
  deactivate  stops it (publishers and subscriptions are removed)
  cleanup     frees the model; start-up parameters can be changed again
  shutdown    stops everything
Start-up parameters (model_path, backend, ...) may be set while unconfigured; live ones anytime.
Same topics and parameters as the plain node (lsmdepth_ros.ros.node), which stays the default.
"""
from __future__ import annotations

import functools
import sys

from lsmdepth_ros.ros.process import run_node
from lsmdepth_ros.ros.topics import NODE_NAME
from lsmdepth_ros.ros.transport import use_large_data_transport


@functools.cache
def make_lifecycle_node_class():
    """The lifecycle node class (imports rclpy and the model code, so only on demand)."""
    from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

    from lsmdepth_ros.ros.params import declare_parameters, on_set_parameters
    from lsmdepth_ros.ros.pipeline import DepthPipeline, load_estimator

    class LifecycleDepthNode(LifecycleNode):
        def __init__(self, **kwargs):
            super().__init__(NODE_NAME, **kwargs)
            self.params = declare_parameters(self, startup_writable=True)
            self.estimator = None
            self.pipeline = None
            self.add_on_set_parameters_callback(on_set_parameters(
                lambda: self.params, self._set_params,
                allow_startup=lambda: self.estimator is None))

        def _set_params(self, params) -> None:
            self.params = params
            if self.pipeline is not None:
                self.pipeline.set_params(params)

        def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
            try:
                self.estimator = load_estimator(self, self.params)
            except ValueError as exc:   # ModelLoadError included: the message says why
                self.get_logger().error(f"configure failed: {exc}")
                return TransitionCallbackReturn.FAILURE
            self.pipeline = DepthPipeline(self, self.params, self.estimator)
            return TransitionCallbackReturn.SUCCESS

        def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
            self.pipeline.start()
            return super().on_activate(state)

        def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
            self.pipeline.stop()
            return super().on_deactivate(state)

        def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
            self._free()
            return TransitionCallbackReturn.SUCCESS

        def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
            self.stop()
            self._free()
            return TransitionCallbackReturn.SUCCESS

        def _free(self) -> None:
            self.pipeline = None
            self.estimator = None   # the model's memory goes with the last reference

        def stop(self) -> None:
            if self.pipeline is not None:
                self.pipeline.stop()

    return LifecycleDepthNode


def main(args=None) -> int:
    use_large_data_transport()
    return run_node(make_lifecycle_node_class, NODE_NAME, args)


if __name__ == "__main__":
    sys.exit(main())
