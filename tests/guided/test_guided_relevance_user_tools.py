# ruff: noqa: RUF001  (real Chinese and Japanese text, with its full-width punctuation)
"""The relevance gate on user tools (issue #22, sixth round): requests in Chinese or
Japanese, a misspelt name word, an identifier, an act the tool does not do, and a
request that names the whole of a tool's name. Pure functions, no model."""

from __future__ import annotations

from tool_specs import spec as _tool

from pilothouse.guided.relevance import asked_for, cjk_pairs, conflicting_action, fits
from pilothouse.models.base import ToolSpec


def _weather_zh() -> ToolSpec:
    return _tool(
        "get_weather",
        "获取特定地点的当前天气。",
        location={"type": "string", "description": "城市和国家，例如：杭州，中国。"},
    )


def test_cjk_pairs_skip_kana_particles_and_common_characters() -> None:
    assert "天气" in cjk_pairs("杭州今天天气怎么样？")
    # hiragana (の, さ, は) breaks the runs: 東京タワー and 高
    assert cjk_pairs("東京タワーの高さは？") == {"東京", "京タ", "タワ", "ワー"}
    assert not cjk_pairs("What is the weather?")
    assert "的天" not in cjk_pairs("北京的天气")


def test_a_cjk_request_is_judged_against_a_tool_described_in_cjk() -> None:
    time_zh = _tool("get_current_time", "当你想知道现在的时间时非常有用。")
    assert fits("杭州今天天气怎么样？", _weather_zh())
    assert fits("现在几点了？", time_zh)
    assert not fits("北京到上海有多远？", time_zh)
    assert not fits("帮我写一首关于春天的诗", _weather_zh())
    # described in English: nothing to judge a Japanese request by, so it is kept
    image = _tool("generate_image", "Generates scenery from a sentence.", prompt={"type": "string"})
    assert fits("夕焼けの海の絵を描いて", image)
    assert asked_for("杭州今天天气怎么样？", _weather_zh())


def test_a_name_word_misspelt_by_one_letter_still_meets_the_name() -> None:
    weather = _tool("get_weather", "Get the current weather for a city", city={"type": "string"})
    assert fits("hows the wether in lisbon rn?", weather)
    assert fits("hows the waether in lisbon?", weather)
    assert fits("the weahter in lisbon?", weather)
    light = _tool("night_mode", "Dim the screen.", level={"type": "string"})
    assert not fits("turn the light on", light)  # a changed letter is another word
    assert not fits("the wxaeher in lisbon?", weather)  # two changed letters, not a swap


def test_an_identifier_is_evidence_for_a_tool_that_takes_one() -> None:
    issue = _tool("issue_get", "Get full details of a single issue.", issue_key={"type": "string"})
    assert fits("Show me ticket OPS-1423", issue)
    assert not fits("Show me the ticket about the login page", issue)
    assert not fits("Show me ticket Q3", issue)  # one digit: not an identifier
    no_id = _tool("issue_summary", "Summarise an issue.", text={"type": "string"})
    assert not fits("Show me ticket OPS-1423", no_id)


def test_a_request_for_another_act_does_not_fit() -> None:
    read = _tool("read_file", "Read contents of a file", path={"type": "string"})
    order = _tool("get_order", "Get an order by its id.", orderId={"type": "string"})
    cancel = _tool("cancel_order", "Cancel an order", order_id={"type": "string"})
    assert conflicting_action("Delete the file old_backup.zip", read)
    assert not fits("Delete the file old_backup.zip", read)
    assert not fits("Cancel order A1090 please.", order)
    assert fits("please cancel order A1090", cancel)
    assert fits("Can you check order A1077 for me?", order)
    # a read in the request says nothing against a tool that writes
    assert not conflicting_action("Show me order A1077", cancel)
    # a first word that only looks like a command: no object follows it
    weather = _tool("get_weather", "Get the current weather for a city", city={"type": "string"})
    books = _tool("search_books", "Search books by topic", topic={"type": "string"})
    for request, tool in [
        ("New York weather tomorrow?", weather),
        ("Update me on the weather in Paris", weather),
        ("Clear weather in Rome today?", weather),
        ("Make sure to get the weather for Oslo", weather),
        ("Book recommendations about WWII", books),
    ]:
        assert not conflicting_action(request, tool), request
        assert fits(request, tool), request
    assert conflicting_action("Cancel my booking", order)


def test_naming_the_whole_name_asks_for_the_tool() -> None:
    weather = _tool("get_weather", "Get the current weather for a city", city={"type": "string"})
    assert asked_for("What is the current weather in Munich?", weather)
    cells = _tool(
        "get_cell_function",
        "Get the information about cell functions based on its part.",
        cell_part={"type": "string"},
    )
    assert fits("Identify the number of the mitochondria in a cell.", cells)
    assert not asked_for("Identify the number of the mitochondria in a cell.", cells)
