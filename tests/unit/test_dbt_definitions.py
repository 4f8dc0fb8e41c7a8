"""The fingerprint that decides whether the incremental models' stored days are still valid."""

from __future__ import annotations

import copy

from clv_platform.lib.dbt import incremental_definition_fingerprint


def _manifest() -> dict:
    """staging view -> incremental daily model -> mart; macros: one called through another, one unused."""

    def model(name, materialized, nodes=(), macros=()):
        return {
            "resource_type": "model",
            "config": {"materialized": materialized},
            "checksum": {"checksum": name},
            "depends_on": {"nodes": list(nodes), "macros": list(macros)},
        }

    return {
        "nodes": {
            "model.p.stg": model("stg", "view", nodes=["source.p.raw.lines"], macros=["macro.p.clean"]),
            "model.p.daily": model("daily", "incremental", nodes=["model.p.stg"], macros=["macro.p.daily_config"]),
            "model.p.mart": model("mart", "table", nodes=["model.p.daily"], macros=["macro.p.unused_by_daily"]),
            "test.p.not_null_daily": {
                "resource_type": "test",
                "config": {},
                "checksum": {"checksum": "t"},
                "depends_on": {"nodes": ["model.p.daily"], "macros": []},
            },
        },
        "macros": {
            "macro.p.clean": {"macro_sql": "trim(x)", "depends_on": {"macros": ["macro.dbt.cast"]}},
            "macro.dbt.cast": {"macro_sql": "cast(x as y)", "depends_on": {"macros": []}},
            "macro.p.daily_config": {"macro_sql": "incremental", "depends_on": {"macros": []}},
            "macro.p.unused_by_daily": {"macro_sql": "round(x)", "depends_on": {"macros": []}},
        },
    }


def _changed(edit) -> bool:
    manifest = _manifest()
    edited = copy.deepcopy(manifest)
    edit(edited)
    return incremental_definition_fingerprint(edited) != incremental_definition_fingerprint(manifest)


def test_the_same_manifest_gives_the_same_fingerprint():
    assert incremental_definition_fingerprint(_manifest()) == incremental_definition_fingerprint(_manifest())


def test_the_model_itself_an_upstream_model_or_a_macro_they_call_changes_it():
    assert _changed(lambda m: m["nodes"]["model.p.daily"]["checksum"].update(checksum="daily v2"))
    assert _changed(lambda m: m["nodes"]["model.p.stg"]["checksum"].update(checksum="stg v2"))
    assert _changed(lambda m: m["macros"]["macro.p.daily_config"].update(macro_sql="incremental v2"))
    # Called through another macro: a dbt upgrade that changes a cast counts too.
    assert _changed(lambda m: m["macros"]["macro.dbt.cast"].update(macro_sql="try_cast(x as y)"))


def test_what_the_incremental_models_do_not_read_leaves_it_alone():
    assert not _changed(lambda m: m["nodes"]["model.p.mart"]["checksum"].update(checksum="mart v2"))
    assert not _changed(lambda m: m["macros"]["macro.p.unused_by_daily"].update(macro_sql="round(x, 2)"))
    assert not _changed(lambda m: m["nodes"]["test.p.not_null_daily"]["checksum"].update(checksum="t2"))


def test_a_model_turned_incremental_changes_it():
    assert _changed(lambda m: m["nodes"]["model.p.mart"]["config"].update(materialized="incremental"))


def test_the_one_project_is_parsed_with_the_vars_a_default_feature_run_passes():
    # dbt reuses the parse (partial parsing) only for a run with the same vars and target: the resource's
    # project and the assets' are one, parsed with the feature config's defaults.
    from clv_platform.defs.features.assets import FeatureConfig
    from clv_platform.lib.dbt import dbt_project, default_feature_vars, parse_args, vars_args

    assert dbt_project() is dbt_project()
    assert FeatureConfig().dbt_vars() == default_feature_vars()
    assert parse_args()[-2:] == vars_args(FeatureConfig().dbt_vars())
