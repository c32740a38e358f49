"""Parameters: one table drives the declarations, config/vos.yaml and the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from vos_ros.ros.params import PARAMETERS, NodeConfig, markdown_table, yaml_defaults

ROOT = Path(__file__).resolve().parents[1]


def test_config_file_mirrors_the_declared_defaults():
    assert yaml.safe_load((ROOT / "config" / "vos.yaml").read_text()) == yaml_defaults("/**")


def test_readme_parameter_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- parameters:begin -->\n(.*?)\n<!-- parameters:end -->", readme, re.S)
    assert match, "README lacks the parameters:begin/end markers"
    assert match.group(1) == markdown_table(), (
        "README parameter table is stale; regenerate it with "
        "`python -c 'from vos_ros.ros.params import markdown_table as t; print(t())'`"
    )


def test_every_parameter_is_described_and_limited():
    for spec in PARAMETERS:
        assert len(spec.description) > 20, spec.name
        if isinstance(spec.default, (int, float)) and not isinstance(spec.default, bool):
            assert spec.int_range or spec.float_range, f"{spec.name} has no range"
        assert spec.check(spec.default) is None, spec.name


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"frame_buffer.size": 0}, "frame_buffer.size"),
        ({"output.overlay_alpha": 1.5}, "output.overlay_alpha"),
        ({"backend": "cuda9"}, "backend"),
        ({"input.depth": 2.5}, "input.depth"),
        ({"warmup": 1}, "warmup"),
        ({"no_such": 1}, "no_such"),
    ],
)
def test_bad_values_are_refused_naming_the_parameter(values, named):
    with pytest.raises(ValueError, match=re.escape(named)):
        NodeConfig.from_values(values)


def test_integers_are_accepted_for_doubles():
    assert NodeConfig.from_values({"log_throttle_s": 2}).log_throttle_s == 2.0


def test_declared_descriptors_on_a_real_node():
    rclpy = pytest.importorskip("rclpy")
    from rclpy.context import Context

    from vos_ros.ros.params import declare_parameters, read_config

    context = Context()
    rclpy.init(context=context, args=["--ros-args", "-p", "input.depth:=500"])
    try:
        node = rclpy.create_node("params_probe", context=context)
        rejected = declare_parameters(node)
        assert set(rejected) == {"input.depth"}
        described = node.describe_parameters([spec.name for spec in PARAMETERS])
        by_name = {d.name: d for d in described}
        assert by_name["input.depth"].integer_range[0].to_value == 100
        assert by_name["output.overlay_alpha"].floating_point_range[0].to_value == 1.0
        assert by_name["autostart"].read_only
        assert "one of" in by_name["backend"].additional_constraints
        with pytest.raises(ValueError, match=r"input\.depth"):
            read_config(node, rejected)
        assert read_config(node) == NodeConfig.defaults()  # declared with the default instead
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
