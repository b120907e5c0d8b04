"""glattn.groups is the one table of config groups: every conf/ folder is a row, every row's
facts hold (`_target_` groups' option files name a target, schema stored, display order =
real options),
and the other lists of groups are views of it. Adding a group or an option therefore
touches the table plus its YAML, and these tests say which is missing."""

import pytest
from conftest import CONF_DIR

from glattn import groups
from glattn.groups import GROUPS, Group


def conf_folders() -> set[str]:
    """conf/<group>/ and conf/hydra/<group>/ folders holding option files."""
    found = {p.parent.relative_to(CONF_DIR).as_posix() for p in CONF_DIR.glob("*/*.yaml")}
    found |= {p.parent.relative_to(CONF_DIR).as_posix() for p in CONF_DIR.glob("hydra/*/*.yaml")}
    return found - {"hydra"}


def stems(name: str) -> set[str]:
    return {p.stem for p in (CONF_DIR / name).glob("*.yaml")} - {"README"}


def test_every_conf_folder_is_a_row_of_the_table_and_every_row_a_folder():
    assert conf_folders() - set(groups.BY_NAME) == set(), "add these folders to glattn.groups"
    # only the schema group lives in Hydra's ConfigStore instead of conf/
    assert set(groups.BY_NAME) - conf_folders() == {"schema"}


@pytest.mark.parametrize("row", [g for g in GROUPS if g.target], ids=lambda g: g.name)
def test_every_option_of_a_target_group_names_an_importable_target(row: Group):
    from hydra.utils import get_object
    from omegaconf import OmegaConf

    for stem in sorted(stems(row.name)):
        target = OmegaConf.load(CONF_DIR / row.name / f"{stem}.yaml").get("_target_")
        assert target is not None and callable(get_object(target)), (row.name, stem)


@pytest.mark.parametrize("row", [g for g in GROUPS if g.order], ids=lambda g: g.name)
def test_display_order_names_real_options(row: Group):
    assert len(set(row.order)) == len(row.order)
    assert set(row.order) <= stems(row.name), f"{row.name}: order names a missing option"


def test_schemas_of_the_table_are_stored():
    from glattn.schema import SCHEMAS

    for row in GROUPS:
        assert row.schema is None or row.schema in SCHEMAS, row


def test_flags_are_consistent():
    assert set(groups.RUN_NAME_GROUPS) <= set(groups.FACTORS) <= set(groups.RECORDED_GROUPS)
    assert not set(groups.USER_GROUPS) & set(groups.INTERNAL_GROUPS)
    assert set(groups.USER_GROUPS) | set(groups.INTERNAL_GROUPS) == set(groups.BY_NAME)
    assert not any(groups.group(g).internal for g in groups.RECORDED_GROUPS)
    assert not groups.group("trainer").target and groups.group("fusion").target
    with pytest.raises(KeyError, match="unknown config group 'fusions'; .* has: backbone"):
        groups.group("fusions")


def test_the_other_lists_are_views_of_the_table():
    from glattn.config import GROUPS as CONFIG_GROUPS
    from glattn.tracking.names import FACTORS

    assert CONFIG_GROUPS == groups.RECORDED_GROUPS
    assert FACTORS == groups.FACTORS
    assert groups.RUN_NAME_GROUPS == ("backbone", "attention", "fusion", "residual", "dataset")


def test_display_order_puts_unknown_options_last_sorted():
    assert groups.display_order("attention", ["cbam", "zeta", None, "none", "alpha"]) == [
        "none",
        "cbam",
        "alpha",
        "zeta",
    ]
    assert groups.display_order("no_such_group", ["b", "a"]) == ["a", "b"]
