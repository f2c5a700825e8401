# ruff: noqa: E501, RUF001  (data: published declarations, sources and requests kept as written)
"""The requests of the live-like set's second batch (seventh round), written for it.

Same form and rules as `cases.py` (not taken from any user log): `CALLS` are
(tool key, request, accepted arguments, system prompt or ""), the accepted arguments in
BFCL's possible-answer form ("" = may be left out; an argument not named must be left
out); `IRRELEVANT` are (tool key, request, system prompt or ""), the right answer being
no call. Written in the styles the first batch lacked or had few of: a request that
names the act but not the tool's words ("put on some Radiohead"), a ticker or a channel
id, a request with two sentences of context before the ask, German, Russian, Spanish,
Portuguese, French and Chinese, and irrelevant requests on the tool's own topic.
"""

from __future__ import annotations

from typing import Any

SLACKBOT = "You are an internal ops bot. You can post to Slack on the user's behalf."
KITCHEN = "You help the family manage shopping lists."
TRADER = "You are a finance assistant. Answer briefly."

CALLS: list[tuple[str, str, dict[str, list[Any]], str]] = [
    (
        "hestia_artist",
        "Play Radiohead",
        {"artist": ["Radiohead"]},
        "",
    ),
    (
        "hestia_artist",
        "I'm cooking dinner and need some background music, put on some Norah Jones please.",
        {"artist": ["Norah Jones"]},
        "",
    ),
    (
        "av_quote",
        "What's the latest quote for MSFT?",
        {"symbol": ["MSFT"]},
        "",
    ),
    (
        "av_quote",
        "how is nvidia trading today? ticker NVDA",
        {"symbol": ["NVDA"]},
        TRADER,
    ),
    (
        "opaw_stock",
        "What's Tesla's stock price right now?",
        {"company": ["TSLA", "Tesla"]},
        "",
    ),
    (
        "slack_post",
        "Post 'Deploy finished, all green' to channel C024BE91L.",
        {"channel_id": ["C024BE91L"], "text": ["Deploy finished, all green"]},
        SLACKBOT,
    ),
    (
        "slack_post",
        "can u tell the team in C07QX2M8Z that standup is moved to 10:30",
        {
            "channel_id": ["C07QX2M8Z"],
            "text": [
                "standup is moved to 10:30",
                "Standup is moved to 10:30",
                "Standup is moved to 10:30.",
                "standup moved to 10:30",
            ],
        },
        SLACKBOT,
    ),
    (
        "anylist_item",
        "Add oat milk to the Costco list.",
        {"listName": ["Costco"], "itemName": ["oat milk"]},
        KITCHEN,
    ),
    (
        "anylist_item",
        "We're out of eggs. Put 2 dozen eggs on the Trader Joe's list.",
        {
            "listName": ["Trader Joe's"],
            "itemName": ["eggs"],
            "quantity": [2],
            "unit": ["dozen"],
        },
        KITCHEN,
    ),
    (
        "vikunja_task",
        "Create a task 'Renew passport' in project 12.",
        {"project_id": [12], "title": ["Renew passport"]},
        "",
    ),
    (
        "vikunja_task",
        "add a todo to project 3: call the plumber, priority 4",
        {
            "project_id": [3],
            "title": ["call the plumber", "Call the plumber"],
            "priority": [4],
        },
        "",
    ),
    (
        "luktar_email",
        "Email anna.k@example.org: The contract is signed, thanks!",
        {"email": ["anna.k@example.org"], "text_message": ["The contract is signed, thanks!"]},
        "",
    ),
    (
        "luktar_email",
        "Schreib eine Mail an jonas@firma.de: Das Meeting fällt heute aus.",
        {"email": ["jonas@firma.de"], "text_message": ["Das Meeting fällt heute aus."]},
        "",
    ),
    (
        "gh_issue",
        "Open an issue in octocat/hello-world titled 'Login button does nothing'.",
        {
            "owner": ["octocat"],
            "repo": ["hello-world"],
            "title": ["Login button does nothing"],
        },
        "",
    ),
    (
        "gh_issue",
        "File a bug on acme/widgets: title 'Crash on startup', body 'App crashes when config.yml is missing'.",
        {
            "owner": ["acme"],
            "repo": ["widgets"],
            "title": ["Crash on startup"],
            "body": ["App crashes when config.yml is missing"],
        },
        "",
    ),
    (
        "maga_alarm",
        "Wake me up at 06:45.",
        {"time": ["06:45"]},
        "",
    ),
    (
        "maga_alarm",
        "set an alarm for 21:30 pls",
        {"time": ["21:30"]},
        "",
    ),
    (
        "fg_alarm",
        "Set an alarm for 7:15.",
        {"hour": [7], "minute": [15]},
        "",
    ),
    (
        "fg_alarm",
        "I have an early flight tomorrow, can you set an alarm at 5:00?",
        {"hour": [5], "minute": [0]},
        "",
    ),
    (
        "ru_weather",
        "Какая сейчас погода в Казани?",
        {"city": ["Казань", "Kazan"]},
        "",
    ),
    (
        "ru_weather",
        "What's the weather like in Novosibirsk?",
        {"city": ["Novosibirsk", "Новосибирск"]},
        "",
    ),
    (
        "es_price",
        "¿Cuánto cuesta el arroz?",
        {"product": ["arroz"]},
        "",
    ),
    (
        "es_price",
        "Hola! quería saber el precio del aceite de girasol",
        {"product": ["aceite de girasol"]},
        "",
    ),
    (
        "es_correo",
        "Envía un correo a lucia@gmail.com diciendo: La reunión es mañana a las 9.",
        {"destinatarios": ["lucia@gmail.com"], "cuerpo": ["La reunión es mañana a las 9."]},
        "",
    ),
    (
        "ping",
        "Is 10.0.0.12 reachable?",
        {"host": ["10.0.0.12"]},
        "",
    ),
    (
        "ping",
        "The site feels down to me. Can you ping example.com?",
        {"host": ["example.com"]},
        "",
    ),
    (
        "ollama_news",
        "Any news about the Mars sample return mission?",
        {
            "query": ["Mars sample return mission", "Mars sample return"],
            "num_results": ["", 5],
        },
        "",
    ),
    (
        "ollama_news",
        "Give me 3 articles on electric vehicle subsidies",
        {
            "query": ["electric vehicle subsidies", "EV subsidies"],
            "num_results": [3],
        },
        "",
    ),
    (
        "mmps_news",
        "What are today's sports headlines?",
        {"category": ["sports"], "query": [""], "limit": [""]},
        "",
    ),
    (
        "mmps_news",
        "Quais são as últimas notícias sobre a Petrobras?",
        {"query": ["Petrobras"], "category": [""], "limit": [""]},
        "",
    ),
    (
        "zh_news",
        "搜索一下关于人工智能的最新新闻",
        {"query": ["人工智能", "人工智能的最新新闻", "人工智能最新新闻"]},
        "",
    ),
    (
        "zh_news",
        "Find news about the Champions League final.",
        {"query": ["Champions League final", "the Champions League final"]},
        "",
    ),
    (
        "zh_search",
        "帮我在网上搜索一下量子计算的原理",
        {"query": ["量子计算的原理", "量子计算原理", "量子计算"], "options": [""]},
        "",
    ),
    (
        "zh_search",
        "Search the web for the best hiking trails near Vancouver",
        {
            "query": [
                "best hiking trails near Vancouver",
                "the best hiking trails near Vancouver",
            ],
            "options": [""],
        },
        "",
    ),
]

IRRELEVANT: list[tuple[str, str, str]] = [
    ("hestia_artist", "Who sang 'Bohemian Rhapsody'?", ""),
    ("hestia_artist", "Turn the living room lights off.", ""),
    ("av_quote", "Explain the difference between a stock and a bond.", TRADER),
    ("opaw_stock", "Who is the CEO of Apple?", ""),
    ("slack_post", "Summarise what was said in the #general channel yesterday.", SLACKBOT),
    ("anylist_item", "What can I cook with eggs, spinach and feta?", KITCHEN),
    ("anylist_item", "Remove bananas from the Kroger list.", KITCHEN),
    ("vikunja_task", "How many tasks are overdue in project 7?", ""),
    ("luktar_email", "Did Marco reply to my email yet?", ""),
    ("gh_issue", "Close issue #42 in octocat/hello-world.", ""),
    ("maga_alarm", "What time is it in Tokyo?", ""),
    ("fg_alarm", "Cancel my 7 am alarm.", ""),
    ("ru_weather", "Сколько будет 17 умножить на 23?", ""),
    ("es_price", "¿Cuál es la capital de Paraguay?", ""),
    ("es_correo", "¿Tengo correos nuevos de mi jefe?", ""),
    ("ping", "What is the difference between TCP and UDP?", ""),
    ("ollama_news", "Write a short poem about the sea.", ""),
    ("mmps_news", "Wie spät ist es in New York?", ""),
    ("zh_news", "给我讲个笑话", ""),
    ("zh_search", "把这句话翻译成英文：我今天很累", ""),
]
