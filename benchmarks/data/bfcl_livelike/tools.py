# ruff: noqa: E501, RUF001  (data: published declarations, sources and requests kept as written)
"""The user tools of the live-like set, as their authors published them.

Each entry: the function declaration (name, description, JSON-Schema parameters) as
found in a public repository (OpenAI ``tools``/``functions`` entries, Anthropic
``input_schema``, Gemini declarations, or a README's tool table), and where it was
found (``repo:path@commit``). Only the declaration is kept (no program code); a
declaration with a type outside JSON Schema ("int", "Tuple(int, int, int)", Gemini's
upper-case types) or with ``required`` outside ``parameters`` is kept as written and
converted by `build.py`. None comes from gorilla/BFCL or a fork of it.
"""

from __future__ import annotations

from typing import Any

from declarations import obj as _obj
from declarations import string as _s

TOOLS: dict[str, dict[str, Any]] = {
    "babys_weather": {
        "source": "JNSAPH/Babys-first-Agent:a.sh@37ca94ca959dafb8ea723f158a067644c4446340",
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": _obj({"city": _s("Name of the city")}, ["city"]),
    },
    "ctc_weather": {
        "source": "nishant-gh/ctc-workshop:foundation/openai/04_tool/tool.py@ff10ff7cac4925817a7aab3902cf7f93c990e300",
        "name": "get_weather",
        "description": "Get the current weather in a given location",
        "parameters": _obj(
            {"location": _s("The city and state, e.g. San Francisco, CA")}, ["location"]
        ),
    },
    "recsys_weather": {
        "source": "rec-sys-0706/rec-sys:cookbook/assistant/chat_completion_function.py@de6574a597bdb3a702098aa9b43b9bcdc232ff25",
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": _obj(
            {
                "location": _s("The city and state, e.g. San Francisco, CA"),
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            ["location"],
        ),
    },
    "clocktower_weather": {
        "source": "OrcaStructure/ClocktowerBench:testing/function_calling.py@f00f9196319bc45f63123657054c55ad48bde440",
        "name": "get_weather",
        "description": "Get current temperature for a given location.",
        "parameters": _obj(
            {"location": _s("City and country e.g. Bogotá, Colombia")}, ["location"]
        ),
    },
    "taskmate_lead": {
        "source": "charlimoo/taskmate:Function_info.py@f77918b1ae5a1ce80ff60a0ff46b6a63a14beef4",
        "name": "AddLeanWithApi",
        "description": "creates a profile for a person in the CRM",
        "parameters": _obj(
            {
                "name": _s("First name of the person"),
                "lastName": _s("Last name of the person"),
                "mobiles": _s("Phone number of the person"),
                "genderID": {
                    "type": "int",
                    "description": "gender of the person, male is 1 and female is 2, unknown is 3",
                },
            },
            ["name", "lastName", "mobiles"],
        ),
    },
    "hubspot_contact": {
        "source": "CerealNotFound/function-calling-server:utils/createContact.js@9629a647c1b375345c374d897e66a3d0f65abfff",
        "name": "createContact",
        "description": "creates a contact object with the relevant data that would be added to a CRM (HubSpot)",
        "parameters": _obj(
            {
                "email": _s("corresponding email of the contact"),
                "firstname": _s("first name of the contact"),
                "lastname": _s("last name of the contact"),
                "phone": _s(
                    "phone number of the contact with the country code. example: +91 1234567890"
                ),
                "company": _s("name of the company that the contact is associated with"),
                "website": _s("url of the website of the contact"),
                "lifecyclestage": _s(
                    "customer lifecycle stage of the contact",
                    enum=[
                        "subscriber",
                        "lead",
                        "marketingqualifiedlead",
                        "salesqualifiedlead",
                        "opportunity",
                        "customer",
                        "evangelist",
                        "other",
                    ],
                ),
            },
            ["firstname", "email"],
        ),
    },
    "sf_lead": {
        "source": "Eliasdb/eDB:apps/mobile/src/lib/features/admin/components/capabilities/modules/salesforce.ts@b7cd3252f887e5e008c0827dfc42a36a7e9b396c",
        "name": "salesforce_upsert_lead",
        "description": "Create/update Salesforce lead",
        "parameters": _obj(
            {
                "email": _s(),
                "firstName": _s(),
                "lastName": _s(),
                "company": _s(),
                "phone": _s(),
            },
            ["email"],
        ),
    },
    "sf_opportunity": {
        "source": "Eliasdb/eDB:apps/mobile/src/lib/features/admin/components/capabilities/modules/salesforce.ts@b7cd3252f887e5e008c0827dfc42a36a7e9b396c",
        "name": "salesforce_update_opportunity_stage",
        "description": "Update opportunity stage",
        "parameters": _obj(
            {"opportunityId": _s(), "stageName": _s()}, ["opportunityId", "stageName"]
        ),
    },
    "gcal_event": {
        "source": "Rajnish6342/gen-ai-learning:tools/google-calendar.js@6f0c4e835f43ceb9f2ed0aee017a3d0d829a836f",
        "name": "create_google_calendar_event",
        "description": "Creates a google calendar event",
        "parameters": _obj(
            {
                "title": _s("Title of the event"),
                "start_time": _s(
                    "Start time of the event in ISO 8601 format (e.g., 2025-08-24T17:00:00)"
                ),
                "end_time": _s(
                    "End time of the event in ISO 8601 format (e.g., 2025-08-24T18:00:00)"
                ),
                "timezone": _s("Timezone of the event (e.g., UTC, Asia/Kolkata)"),
                "description": _s("Description of the event"),
                "participants": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "List of participants' emails",
                },
            },
            ["title", "start_time", "end_time"],
        ),
    },
    "fr_event": {
        "source": "alex368/btdemande:config/openai/tools.php@0348683b93bbbb5b50f5133b2aef56d7c62196ba",
        "name": "create_event",
        "description": "Créer un rendez-vous dans Google Calendar.",
        "parameters": _obj(
            {
                "title": {"type": "string"},
                "start": {"type": "string", "format": "date-time"},
                "end": {"type": "string", "format": "date-time"},
            },
            ["title", "start", "end"],
        ),
    },
    "ollama_weather": {
        "source": "darcyg32/Ollama-Tools-Integration-with-FastAPI-Demo:tools.py@f20b301251258a50e43ad69cb44651466c20fc36",
        "name": "get_current_weather",
        "description": "Get the current weather for a city",
        "parameters": _obj({"city": _s("The name of the city")}, ["city"]),
    },
    "ollama_time": {
        "source": "darcyg32/Ollama-Tools-Integration-with-FastAPI-Demo:tools.py@f20b301251258a50e43ad69cb44651466c20fc36",
        "name": "get_time",
        "description": "Get the current time",
        "parameters": _obj({}, []),
    },
    "it_emails": {
        "source": "canniz/ai_assistants:ai_secretary/actions.py@a151ac7f5f452b93de5593707e711513e4bfe1c4",
        "name": "get_emails",
        "description": "Get user unread emails",
        "parameters": _obj({}, []),
    },
    "it_calendar": {
        "source": "canniz/ai_assistants:ai_secretary/actions.py@a151ac7f5f452b93de5593707e711513e4bfe1c4",
        "name": "get_calendar_events",
        "description": "Recupera eventi nel calendario nell'intervallo definito dai parametri.",
        "parameters": _obj(
            {
                "start_date_time": _s("Start date-time in ISO8601 format. Utilizza sempre UTC+1"),
                "end_date_time": _s("End date-time in ISO8601 format. Utilizza sempre UTC+1"),
            },
            ["start_date_time", "end_date_time"],
        ),
    },
    "es_command": {
        "source": "iwanttobefreak/ollama_local:lecciones/leccion01/README.md@d39e17dada15cd787bcd2340cc84ab770137ea3a",
        "name": "execute_command",
        "description": "Ejecuta comandos del sistema de forma segura",
        "parameters": _obj(
            {
                "command": _s("El comando a ejecutar (ej: 'ls -la', 'docker ps')"),
                "directory": _s(
                    "Directorio donde ejecutar el comando (opcional)", default="/projects"
                ),
            },
            ["command"],
        ),
    },
    "zh_weather": {
        "source": "cabfan/Smart-Dashboard:frontend/src/utils/functionDescription.js@24d7764ebd1d7e20264cd6fb2dc27d8a40f0c6ac",
        "name": "get_weather",
        "description": "获取特定地点的当前天气。仅在用户明确要求天气信息并提供有效地点时调用此功能。",
        "parameters": _obj({"location": _s("城市和国家，例如：杭州，中国。")}, ["location"]),
    },
    "zh_weather2": {
        "source": "chiefzzs/aitest:day1/tools/tools_config.py@68171189cddb54b174722421e3f7e2e55aa5a82e",
        "name": "get_current_weather",
        "description": "当你想查询指定城市的天气时非常有用。",
        "parameters": _obj(
            {"location": _s("城市或县区，比如北京市、杭州市、余杭区等。")}, ["location"]
        ),
    },
    "zh_time": {
        "source": "chiefzzs/aitest:day1/tools/tools_config.py@68171189cddb54b174722421e3f7e2e55aa5a82e",
        "name": "get_current_time",
        "description": "当你想知道现在的时间时非常有用。",
        "parameters": None,  # published without parameters
    },
    "cc_read": {
        "source": "GluStu/codecrafters-claude-code-python:app/tools.py@4a9db64f403d40f6d54ef6f812fa5457b8530085",
        "name": "Read",
        "description": "Read and return the contents of a file",
        "parameters": _obj({"file_path": _s("The path to the file to read")}, ["file_path"]),
    },
    "cc_write": {
        "source": "GluStu/codecrafters-claude-code-python:app/tools.py@4a9db64f403d40f6d54ef6f812fa5457b8530085",
        "name": "Write",
        "description": "Write content to a file",
        "parameters": _obj(
            {
                "file_path": _s("The path of the file to write to"),
                "content": _s("The content to write to the file"),
            },
            ["file_path", "content"],
        ),
    },
    "fl_list": {
        "source": "baync180705/frameworkless_agentic:schema.py@6b76f249ed02598c2fc594bb2606cee59dee8b53",
        "name": "list_files",
        "description": "List all files and directories at the given path",
        "parameters": _obj({"path": _s("Directory path")}, []),
    },
    "fl_read": {
        "source": "baync180705/frameworkless_agentic:schema.py@6b76f249ed02598c2fc594bb2606cee59dee8b53",
        "name": "read_file",
        "description": "Read contents of a file",
        "parameters": _obj({"path": _s("File path")}, ["path"]),
    },
    "gmail_search": {
        "source": "ThibautHurson/AssistantToTheRegionalManager:backend/assistant_app/agents/tools/tools_schema.py@757e0c706c5604341d1927bcb5a0310774ed4c4f",
        "name": "search_gmail",
        "description": "Search gmail based on a query",
        "parameters": _obj({"query": _s("Gmail-compatible search query")}, ["query"]),
    },
    "send_email": {
        "source": "haynb/ai-mailbox-assistant:openaiModel/tools.py@954573fec5371cb23e3a7832c1cd73cda9062ea2",
        "name": "send_email",
        "description": "Send an email to a specified recipient",
        "parameters": _obj(
            {
                "to_email": _s("Recipient's email address"),
                "subject": _s("Subject of the email"),
                "body": _s("Body content of the email"),
            },
            ["to_email", "subject", "body"],
        ),
    },
    "lucy_timer": {
        "source": "wl00494849/Lucy-agent:src/tool_dsc.py@d9c90734b27784aa48f0696c57727a09f84eb204",
        "name": "timer_notify",
        "description": "定時通知",
        # published with "required" beside "parameters", not inside: no argument is required
        "parameters": _obj(
            {
                "time_sec": {
                    "type": "integer",
                    "description": "倒數秒數，例如 60 代表 1 分鐘後通知",
                },
                "message": _s("時間到通知訊息"),
                "userid": _s("LineBot的UserID"),
            }
        ),
    },
    "lucy_calendar": {
        "source": "wl00494849/Lucy-agent:src/tool_dsc.py@d9c90734b27784aa48f0696c57727a09f84eb204",
        "name": "create_calendar_event",
        "description": "在 Google 行事曆建立事件(ISO 8601 時間）。",
        "parameters": _obj(
            {
                "summary": {"type": "string"},
                "description": {"type": "string"},
                "location": {"type": "string"},
                "start_datetime": {"type": "string"},
                "end_datetime": {"type": "string"},
                "timezone": {"type": "string", "default": "Asia/Taipei"},
                "attendees": {"type": "array", "items": {"type": "string", "format": "email"}},
                "reminders_minutes_before": {"type": "integer"},
            },
            ["summary", "start_datetime", "end_datetime"],
        ),
    },
    "reminder": {
        "source": "astelmach01/GPT-crawler-backend-python:app/web/api/chat/functions.py@c0ac16aa6453ccad3bb488154ed2969cdfbfd496",
        "name": "create_reminder",
        "description": "This function handles the logic for creating a reminder for a generic task at a given date and time.",
        "parameters": _obj(
            {
                "task": _s("The task to be reminded of, such as 'clean the house'"),
                "date": _s(
                    "The date and time to be reminded at as a datetime string in the format "
                    "%Y-%m-%d %H:%M:%S, such as '2021-08-01 12:00:00'"
                ),
            },
            ["task", "date"],
        ),
    },
    "cx_order": {
        "source": "nitinNayar/enterprise-cx-agent:tools/tools.py@61442344fdacc9993b7d6082c50f53b2118c703d",
        "name": "look_up_order",
        "description": "Fetch order details. This is the MANDATORY first step for any order query. You can NOT skip this",
        "parameters": _obj({"order_id": {"type": "string"}}, ["order_id"]),
    },
    "cx_policy": {
        "source": "nitinNayar/enterprise-cx-agent:tools/tools.py@61442344fdacc9993b7d6082c50f53b2118c703d",
        "name": "get_policy_info",
        "description": "Retrieve the official policy text for a specific topic. MANDATORY step before processing any refund.",
        "parameters": _obj(
            {
                "policy_type": _s(
                    "The specific policy document to read.", enum=["returns", "shipping", "privacy"]
                )
            },
            ["policy_type"],
        ),
    },
    "get_order": {
        "source": "nickromanenko/openai-module-function-calling:src/tools.ts@5da7646e603d1707995254fd69dc05dee7208ef7",
        "name": "get_order",
        "description": "Get an order by its id.",
        "parameters": _obj({"orderId": _s("Order id like A1001")}, ["orderId"]),
    },
    "orders_by_email": {
        "source": "nickromanenko/openai-module-function-calling:src/tools.ts@5da7646e603d1707995254fd69dc05dee7208ef7",
        "name": "list_orders_by_email",
        "description": "List recent orders for a customer email.",
        "parameters": _obj({"email": _s("Customer email")}, ["email"]),
    },
    "cancel_order": {
        "source": "mayank099/openai-factory-llm-agent:app/tools/__init__.py@74e4ea506924775fb9405449db4194e812ac6a3d",
        "name": "cancel_order",
        "description": "This function is used for cancelling any order",
        "parameters": _obj(
            {
                "order_id": _s("The unique identifier of the order to be cancelled"),
                "reason": _s("The reason for order cancellation (optional)"),
            },
            ["order_id"],
        ),
    },
    "add_to_cart": {
        "source": "mayank099/openai-factory-llm-agent:app/tools/__init__.py@74e4ea506924775fb9405449db4194e812ac6a3d",
        "name": "add_to_cart",
        "description": "Add items to the shopping cart",
        "parameters": _obj(
            {
                "item_id": _s("The unique identifier of the item to add to the cart"),
                "quantity": {
                    "type": "number",
                    "description": "The quantity of the item to add (default is 1)",
                },
            },
            ["item_id"],
        ),
    },
    "product_details": {
        "source": "mayank099/openai-factory-llm-agent:app/tools/__init__.py@74e4ea506924775fb9405449db4194e812ac6a3d",
        "name": "view_product_details",
        "description": "Get detailed information about a specific product",
        "parameters": _obj(
            {"product_id": _s("The unique identifier of the product")}, ["product_id"]
        ),
    },
    "set_lights": {
        "source": "dakj0326/jarvis:tools/tools.py@4090752acd18f45cdeea8149c240311e50542309",
        "name": "setLights",
        "description": "Sets the properties of lights.",
        "parameters": _obj(
            {
                "id": _s("The id of the light to be altered."),
                "state": {"type": "boolean", "description": "The on/off state of the light"},
                "color": {
                    "type": "Tuple(int, int, int)",
                    "description": "The RGB color value of the light represented as the tuple (R, G, B), each integer have a range of 0-255",
                },
                "brightness": {
                    "type": "int",
                    "description": "The brightness of the light, takes a value in the range 0-255",
                },
            },
            ["id"],
        ),
    },
    "es_device": {
        "source": "aalejandrossj/JARVIS:tools/functions.py@58ab7e1299c33665f5b0455253436d64e0a82e77",
        "name": "control_device",
        "description": "Controla dispositivos domóticos Tapo: enciende o apaga según el estado indicado",
        "parameters": _obj(
            {
                "device_name": _s(
                    "Nombre del dispositivo a controlar (p. ej. 'luz habitación', 'televisor cocina', 'calefactor cocina')"
                ),
                "state": _s(
                    "Estado al que se quiere pasar el dispositivo", enum=["encendido", "apagado"]
                ),
            },
            ["device_name", "state"],
        ),
    },
    "es_websearch": {
        "source": "aalejandrossj/JARVIS:tools/functions.py@58ab7e1299c33665f5b0455253436d64e0a82e77",
        "name": "web_search",
        "description": "Realiza una búsqueda en internet y devuelve los resultados más relevantes",
        "parameters": _obj(
            {"text": _s("Cadena de texto a buscar (no vacía)", minLength=1)}, ["text"]
        ),
    },
    "control_light": {
        "source": "pedrocruz3/super-assistant:src/declarations/printMessageFunctionDeclaration.ts@d886764cf440bf7b73bad64041fb4dc9929819f3",
        "name": "controlLight",
        # published with its description inside "parameters" (Gemini style), none beside the name
        "description": "",
        "parameters": {
            "type": "OBJECT",
            "description": "Set the brightness and color temperature of a room light.",
            "properties": {
                "brightness": {
                    "type": "NUMBER",
                    "description": "Light level from 0 to 100. Zero is off and 100 is full brightness.",
                },
                "colorTemperature": {
                    "type": "STRING",
                    "description": "Color temperature of the light fixture which can be `daylight`, `cool` or `warm`.",
                },
            },
            "required": ["brightness", "colorTemperature"],
        },
    },
    "hostai_weather": {
        "source": "wannaphong/android-hostai:FUNCTION_CALLING_EXAMPLES.md@c2980e1e322dd52f917a8f19d6f176954046836b",
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": _obj(
            {
                "city": _s("The city name, e.g., San Francisco"),
                "country": _s("Optional country code, e.g., US"),
                "unit": _s(
                    "Temperature unit (celsius or fahrenheit). Default: celsius",
                    enum=["celsius", "fahrenheit"],
                ),
            },
            ["city"],
        ),
    },
    "flight_info": {
        "source": "hamid-nazar/Nova-AI-virtual-assistant:backend/functions/functions_descriptions.py@573ef9f5316c3b9e332d9e5008cb33412994bafc",
        "name": "get_flight_info",
        "description": "Get flight information between two locations",
        "parameters": _obj(
            {
                "origin": _s("The departure airport, e.g. DUS"),
                "destination": _s("The destination airport, e.g. HAM"),
            },
            ["origin", "destination"],
        ),
    },
    "cheapest_flight": {
        "source": "hamid-nazar/Nova-AI-virtual-assistant:backend/functions/functions_descriptions.py@573ef9f5316c3b9e332d9e5008cb33412994bafc",
        "name": "get_cheapest_flight",
        "description": "Get cheapest flight between two locations.",
        "parameters": _obj(
            {
                "origin": _s("The departure city, e.g. Hamburg"),
                "destination": _s("The destination city, e.g. Berlin"),
            },
            ["origin", "destination"],
        ),
    },
    "weather_info": {
        "source": "hamid-nazar/Nova-AI-virtual-assistant:backend/functions/functions_descriptions.py@573ef9f5316c3b9e332d9e5008cb33412994bafc",
        "name": "get_weather_info",
        "description": "Get weather in a city.",
        "parameters": _obj({"city": _s("The city to get the weather for, e.g. Hamburg")}, ["city"]),
    },
    "add_reminder": {
        "source": "hamid-nazar/Nova-AI-virtual-assistant:backend/functions/functions_descriptions.py@573ef9f5316c3b9e332d9e5008cb33412994bafc",
        "name": "add_reminder",
        "description": "",  # published without a description
        "parameters": _obj(
            {"reminder_text": _s("The text of the reminder to add.")}, ["reminder_text"]
        ),
    },
    "exchange_rate": {
        "source": "hamid-nazar/Nova-AI-virtual-assistant:backend/functions/functions_descriptions.py@573ef9f5316c3b9e332d9e5008cb33412994bafc",
        "name": "get_exchange_rate_info_for_currency",
        "description": "",  # published without a description
        "parameters": _obj(
            {"currency": _s("The currency to get the exchange rate for, e.g. EUR")}, ["currency"]
        ),
    },
    "ha_status": {
        "source": "jbrinkw/luna-personal-assistant:luna_docs/docs/extensions/home-assistant.md@77354128a255038abaf17ba72c10df48e804e5c3",
        "name": "HA_GET_entity_status",
        "description": "Get status of a specific Home Assistant entity.",
        "parameters": _obj({"entity_id": _s("entity id or friendly name")}, ["entity_id"]),
    },
    "ha_on": {
        "source": "jbrinkw/luna-personal-assistant:luna_docs/docs/extensions/home-assistant.md@77354128a255038abaf17ba72c10df48e804e5c3",
        "name": "HA_ACTION_turn_entity_on",
        "description": "Turn on a specific Home Assistant entity.",
        "parameters": _obj({"entity_id": _s("entity id or friendly name")}, ["entity_id"]),
    },
    "ha_tv": {
        "source": "jbrinkw/luna-personal-assistant:luna_docs/docs/extensions/home-assistant.md@77354128a255038abaf17ba72c10df48e804e5c3",
        "name": "HA_ACTION_tv_remote",
        "description": "Send a TV remote action by name (or raw activity/command).",
        "parameters": _obj({"button": _s("action/app")}, ["button"]),
    },
    "jira_create": {
        "source": "Digital-Thought/dtJiraMCPServer:docs/tool-reference.md@38afe34b59d2f80048f16153cb14b644a4f2723a",
        "name": "issue_create",
        "description": "Create a new issue in Jira.",
        # the README lists the parameters and which are required; types as it implies
        "parameters": _obj(
            {
                "project_key": _s(),
                "issue_type": _s(),
                "summary": _s(),
                "description": _s(),
                "priority": _s(),
                "assignee": _s(),
                "labels": {"type": "array", "items": {"type": "string"}},
            },
            ["project_key", "issue_type", "summary"],
        ),
    },
    "jira_get": {
        "source": "Digital-Thought/dtJiraMCPServer:docs/tool-reference.md@38afe34b59d2f80048f16153cb14b644a4f2723a",
        "name": "issue_get",
        "description": "Get full details of a single issue.",
        "parameters": _obj(
            {
                "issue_key": _s(),
                "fields": {"type": "array", "items": {"type": "string"}},
                "expand": {"type": "array", "items": {"type": "string"}},
            },
            ["issue_key"],
        ),
    },
    "jp_username": {
        "source": "MrHiraiwa/GalGaForGPT:functions_config.py@3c66747a003c3979bc4aeb342822c7c65fe66c10",
        "name": "set_UserName",
        "description": "You can set the name of the conversation partner.",
        "parameters": _obj({"username": _s("ユーザーの名前")}),
    },
    "jp_image": {
        "source": "MrHiraiwa/GalGaForGPT:functions_config.py@3c66747a003c3979bc4aeb342822c7c65fe66c10",
        "name": "generate_image",
        "description": "When a topic comes up about places or emotions, it generates your emotions and scenery from a single sentence.",
        "parameters": _obj({"prompt": _s("景色や感情")}),
    },
    "jp_wikipedia": {
        "source": "MrHiraiwa/LineBotForGPTPlus:gpt_config.py@0fd867fcea60705ffa2d00168f3aeea621ddb679",
        "name": "search_wikipedia",
        "description": "useful for when you need to Read dictionary page by specifying the word. ",
        "parameters": _obj({"prompt": _s("検索ワード")}),
    },
    "jp_scraping": {
        "source": "MrHiraiwa/LineBotForGPTPlus:gpt_config.py@0fd867fcea60705ffa2d00168f3aeea621ddb679",
        "name": "scraping",
        "description": "useful for when you need to read a web page by specifying the URL.",
        "parameters": _obj({"link": _s("読みたいページのURL")}),
    },
    "jp_add_calendar": {
        "source": "MrHiraiwa/LineBotForGPTPlus:gpt_config.py@0fd867fcea60705ffa2d00168f3aeea621ddb679",
        "name": "add_calendar",
        "description": "You can add schedules.",
        "parameters": _obj(
            {
                "summary": _s("スケジュールのサマリー(必須)"),
                "start_time": _s(
                    "スケジュールの開始時間をRFC3339フォーマットの日本時間で指定(必須)"
                ),
                "end_time": _s("スケジュールの終了時間をRFC3339フォーマットの日本時間で指定(必須)"),
                "description": _s("スケジュールした内容の詳細な説明(必須)"),
                "location": _s("スケジュールの内容を実施する場所(必須)"),
            }
        ),
    },
    "jp_delete_calendar": {
        "source": "MrHiraiwa/LineBotForGPTPlus:gpt_config.py@0fd867fcea60705ffa2d00168f3aeea621ddb679",
        "name": "delete_calendar",
        "description": "You can delete schedules by the event ID of the schedule.",
        "parameters": _obj({"event_id": _s("削除対象のスケジュールのイベントID(必須)")}),
    },
    "jp_googlesearch": {
        "source": "MrHiraiwa/LineBotForGPTPlus:gpt_config.py@0fd867fcea60705ffa2d00168f3aeea621ddb679",
        "name": "get_googlesearch",
        "description": "",
        "parameters": _obj({"words": _s("検索ワード")}),
    },
    "save_memory": {
        "source": "thanhnguyen-agilityio/ivymoda-fine-tuning:data/tools.py@6e3eb9511640fa24b4765f8dabc6ddc474d89fd5",
        "name": "save_memory",
        "description": "Use this tool to save memories like user information to storage",
        "parameters": _obj({"memory": {"type": "string"}}, ["memory"]),
    },
    "travel_search": {
        "source": "that-goa-trip/Travel-Bot:ai/tools.py@bc73ff9958525349935f64cf174aad7933152b3f",
        "name": "web_search",
        "description": "Search the web for information",
        "parameters": _obj({"query": _s("The search query")}, ["query"]),
    },
}
