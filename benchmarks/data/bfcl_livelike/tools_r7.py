# ruff: noqa: E501, RUF001  (data: published declarations, sources and requests kept as written)
"""The second batch of live-like user tools (seventh round), as their authors published them.

Same method and rules as `tools.py`: each entry is a function declaration found in a
public repository with the workplace's code search (OpenAI ``tools``/``functions``
entries, MCP ``inputSchema``, zod schemas, a Dart tool class, a Markdown tutorial), with
where it was found (``repo:path@commit``); only the declaration is kept, no program
code; types outside JSON Schema (``"str"``, ``"int"``, ``"String"``) are kept as written
and converted by `build.py`. None comes from gorilla/BFCL or a fork of it, and none is
a tool of the first batch. Chosen to widen what the first batch lacked: music, stocks,
chat (Slack), shopping lists with an enum, issue trackers needing an owner and repo, a
task tracker needing a numeric project id, alarms by clock time or by integer hour and
minute, network checks, news with every parameter optional, Russian and Spanish
descriptions and a Spanish function name, a Chinese search tool with a nested options
object.
"""

from __future__ import annotations

from typing import Any

from declarations import obj as _obj
from declarations import string as _s

TOOLS: dict[str, dict[str, Any]] = {
    "hestia_artist": {
        "source": "shenaichan/hestia:src/server/llm/function_routing.py@0ce1417b7769796d7c8af77abd2809b0f7266fa5",
        "name": "play_artist",
        "description": "Play a musical artist on Spotify. Call this whenever a user wants to hear a musical artist, for example, when a user says 'Play Taylor Swift'.",
        "parameters": _obj({"artist": _s("The musical artist's name.")}, ["artist"]),
    },
    "av_quote": {
        "source": "RohanNankani/finance_llm_tools:alpha_vantage/openai/tools.py@bfa2153f090ee71bf27b5b379eb49f39356b3409",
        "name": "get_stock_quote",
        "description": "Fetches the stock quote for a given stock symbol.",
        "parameters": _obj({"symbol": _s("Stock symbol (e.g., AAPL)")}, ["symbol"]),
    },
    "opaw_stock": {
        "source": "worldbiomusic/openai-pw:opaw/examples/funcs.py@f6969859a9054cf2cccae52ae4571bf43c9e55e1",
        "name": "stock_price",
        "description": "Get the stock price of a given company",
        "parameters": _obj({"company": _s("The company stock name, e.g. APPL")}, ["company"]),
    },
    "slack_post": {
        "source": "AVIMBU/slack-mcp-server:src/slack/messages.ts@b3a82fcbfaaae57338d69f37ac204d105b2c8552",
        "name": "slack_post_message",
        "description": "Post a new message to a Slack channel",
        "parameters": _obj(
            {
                "channel_id": _s("The Channel ID to post the message to"),
                "text": _s("The message text to post"),
            },
            ["channel_id", "text"],
        ),
    },
    "anylist_item": {
        "source": "kyledeanreinford/goodbye_world_agent:goodbye_world/tools.py@2215613452b4450ef84606eec3f4ca3dd1800ca6",
        "name": "add_anylist_item",
        "description": "Add an item to an AnyList grocery list. Supported lists: Whole Foods, Grocery, Kroger, Publix, Trader Joe's, Target, Costco.",
        "parameters": _obj(
            {
                "listName": _s(
                    enum=[
                        "Whole Foods",
                        "Grocery",
                        "Kroger",
                        "Publix",
                        "Trader Joe's",
                        "Target",
                        "Costco",
                    ]
                ),
                "itemName": _s(),
                "quantity": {"type": "integer"},
                "unit": _s(),
            },
            ["listName", "itemName"],
        ),
    },
    "vikunja_task": {
        "source": "kyledeanreinford/goodbye_world_agent:goodbye_world/tools.py@2215613452b4450ef84606eec3f4ca3dd1800ca6",
        "name": "add_vikunja_task",
        "description": "Add a task to Vikunja with project_id, title, description, labels, due_date, and priority.",
        "parameters": _obj(
            {
                "project_id": {"type": "integer"},
                "title": _s(),
                "description": _s(),
                "labels": {"type": "array", "items": {"type": "string"}},
                "due_date": _s(format="date-time"),
                "priority": {"type": "integer"},
            },
            ["project_id", "title"],
        ),
    },
    "luktar_email": {
        "source": "luktar/GptIntegration:communi_hub/mail_functions.py@dc83ea1c673f81186fb9c722b1cdaedf3616be54",
        "name": "send_email",
        "description": "Send Email message",
        "parameters": _obj(
            {
                "text_message": _s("Message typed to send"),
                "email": _s("Message receiver email address"),
            },
            ["text_message", "email"],
        ),
    },
    "gh_issue": {
        "source": "codexcommunion/codexcommunion-requests:amplify/functions/agentHandler/tools/createIssueTool.ts@47e5617576a3bd2caded3f7eab03aef61148bc7d",
        "name": "create_issue",
        "description": "Create a new GitHub issue",
        "parameters": _obj(
            {"owner": _s(), "repo": _s(), "title": _s(), "body": _s()},
            ["owner", "repo", "title"],
        ),
    },
    "maga_alarm": {
        "source": "Maga222006/ASSISTANT_PROJECT:tools/alarm.py@7eaff5bb8088f50c72f8c74f9538bf32ade68a8c",
        "name": "alarm",
        "description": "Alarm function, sets an alarm for the specific time.",
        "parameters": _obj(
            {"time": {"type": "str", "description": "Alarm time in format HH:MM ."}}, ["time"]
        ),
    },
    "fg_alarm": {
        "source": "RogerZhang888/functiongemma-hackathon-fork:training/tool_def.py@535b2d6808979d6b4d29ad8d843c388a8bce5d95",
        "name": "set_alarm",
        "description": "Set an alarm for a given time",
        "parameters": _obj(
            {
                "hour": {"type": "integer", "description": "Hour to set the alarm for"},
                "minute": {"type": "integer", "description": "Minute to set the alarm for"},
            },
            ["hour", "minute"],
        ),
    },
    "ru_weather": {
        "source": "yandex-cloud/docs:ru/foundation-models/operations/generation/function-call.md@ac394696b25dc1acde5cded4709c83fca50a58f8",
        "name": "weatherTool",
        "description": "Получает текущую погоду в указанном городе.",
        "parameters": _obj({"city": _s("Название города, например, Москва")}, ["city"]),
    },
    "es_price": {
        "source": "buscapy/wa-gpt-bot:backend/app/gpt/tools.py@68068a79f38c9b3631aa90a577f496bf752732aa",
        "name": "get_price",
        "description": "Devuelve el precio actual de un producto en Paraguay",
        "parameters": _obj(
            {"product": _s("Nombre del producto a buscar, en español")}, ["product"]
        ),
    },
    "es_correo": {
        "source": "isair6786/AIAssistant:AisyAssistant/Chat/Functions/FuncionsGPT.py@deb961e231cf71c912e8a54ac7730f7974f7aad0",
        "name": "enviar_correo",
        "description": "Enviar Correo a destinatarios",
        "parameters": _obj(
            {
                "destinatarios": _s(
                    "El correo electrónico de los destinatarios, ej. santiago@gmail.com o santiago@gmail.com,santiago@gmail.com,etc"
                ),
                "cuerpo": _s("El cuerpo del correo a enviar"),
            },
            ["destinatarios", "cuerpo"],
        ),
    },
    "ping": {
        "source": "kshvakov/ai-agent-course:docs/book/04-tools-and-function-calling/README.md@605877c445150f787f535bdc9aea14179683d46d",
        "name": "ping",
        "description": "Ping a host to check connectivity",
        "parameters": _obj({"host": _s("Hostname or IP address to ping")}, ["host"]),
    },
    "ollama_news": {
        "source": "matt-leyrat/function-calling-ollama:tools.py@a212adcc7056baae06643b141cc27688101000a2",
        "name": "get_news",
        "description": "Fetches news articles related to the given query",
        "parameters": _obj(
            {
                "query": _s("The search query for news articles"),
                "num_results": {
                    "type": "integer",
                    "description": "The number of news articles to return",
                    "default": 5,
                },
            },
            ["query"],
        ),
    },
    "mmps_news": {
        "source": "matansocher/mmps:src/features/chatbot/tools/news/config.ts@3a28255e7c95fe0b6c4fced756e9b5a7148151bd",
        "name": "news",
        "description": "Get latest news headlines or search for specific news topics",
        "parameters": _obj(
            {
                "query": _s("Search query for specific news topics"),
                "category": _s(
                    "News category (business, entertainment, health, science, sports, technology)"
                ),
                "limit": {
                    "type": "number",
                    "description": "Number of articles to return (default: 5)",
                },
            },
            [],
        ),
    },
    "zh_news": {
        "source": "saber09130605/ChatGPT-Next-Web:app/api/searchAi/searchAiConstant.ts@54e18579e3ddea907f8952db578271832e51943c",
        "name": "news",
        "description": "搜索新闻",
        "parameters": _obj({"query": _s("搜索新闻的查询。")}, ["query"]),
    },
    "zh_search": {
        "source": "jswysnemc/let-chat:src/tools/functions_desc.js@5f1bdafcfa7a6f35c84628363ca541c10646fa4b",
        "name": "search_tool",
        "description": "执行Tavily网络搜索并返回结果",
        "parameters": _obj(
            {
                "query": _s("搜索关键词或问题，例如：中国最新经济政策"),
                "options": _obj(
                    {
                        "includeAnswer": {
                            "type": "boolean",
                            "description": "是否包含直接回答",
                            "default": True,
                        },
                        "maxResults": {
                            "type": "number",
                            "description": "最大返回结果数量",
                            "default": 5,
                        },
                        "searchDepth": _s("搜索深度级别", enum=["basic", "advanced"]),
                        "includeRawContent": {
                            "type": "boolean",
                            "description": "是否包含原始内容",
                            "default": False,
                        },
                        "includeImages": {
                            "type": "boolean",
                            "description": "是否包含图片",
                            "default": False,
                        },
                        "includeDomains": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "要包含的域名白名单",
                        },
                        "excludeDomains": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "要排除的域名黑名单",
                        },
                    },
                    [],
                ),
            },
            ["query"],
        ),
    },
}
