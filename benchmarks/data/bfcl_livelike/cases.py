# ruff: noqa: E501, RUF001  (data: published declarations, sources and requests kept as written)
"""The requests of the live-like set, written for it (not taken from any user log).

`CALLS`: (tool key, request, accepted arguments, system prompt or ""). The accepted
arguments are BFCL's possible-answer form: {argument: [accepted values]}; "" in a list
means the argument may be left out. An argument of the tool not named here must be
left out (`build.py` adds it as [""]).
`IRRELEVANT`: (tool key, request, system prompt or ""): the tool cannot serve it, so
the right answer is no call. Styles vary on purpose: terse, chatty, with a system
prompt, with typos, in Spanish, Chinese, Japanese, Italian, French, German.
"""

from __future__ import annotations

from typing import Any

SUPPORT = "You are a customer support assistant for an online shop. Be brief."
HOME = "You are Jarvis, a home assistant. Use the tools to control the house."
SECRETARY = "Sei una segretaria virtuale. Rispondi in italiano."
DEV = "You are a coding agent working in the user's repository."

CALLS: list[tuple[str, str, dict[str, list[Any]], str]] = [
    (
        "babys_weather",
        "What is the current weather in Munich?",
        {"city": ["Munich", "München"]},
        "",
    ),
    (
        "babys_weather",
        "hey! quick one, hows the wether in lisbon rn?",
        {"city": ["Lisbon", "lisbon"]},
        "",
    ),
    (
        "ctc_weather",
        "I'm flying out tomorrow morning and wanted to know what it's like right now in Austin, TX.",
        {"location": ["Austin, TX", "Austin, Texas", "Austin"]},
        "",
    ),
    (
        "recsys_weather",
        "Weather in Denver, CO please, in fahrenheit.",
        {"location": ["Denver, CO", "Denver, Colorado", "Denver"], "unit": ["fahrenheit"]},
        "",
    ),
    (
        "recsys_weather",
        "Is it raining in Seattle right now?",
        {
            "location": ["Seattle", "Seattle, WA", "Seattle, Washington"],
            "unit": ["", "celsius", "fahrenheit"],
        },
        "",
    ),
    (
        "clocktower_weather",
        "How warm is it in Valparaíso, Chile today?",
        {"location": ["Valparaíso, Chile", "Valparaiso, Chile"]},
        "",
    ),
    (
        "taskmate_lead",
        "Add Sara Rossi to the CRM, her mobile is +39 347 555 0192, she's a woman.",
        {
            "name": ["Sara"],
            "lastName": ["Rossi"],
            "mobiles": ["+39 347 555 0192", "+393475550192"],
            "genderID": ["", 2],
        },
        "",
    ),
    (
        "hubspot_contact",
        "new contact: Priya Nair, priya.nair@brightlabs.io, works at Bright Labs",
        {
            "email": ["priya.nair@brightlabs.io"],
            "firstname": ["Priya"],
            "lastname": ["", "Nair"],
            "company": ["", "Bright Labs"],
        },
        "",
    ),
    (
        "hubspot_contact",
        "Please put Tom Becker (tom@beckerbikes.de) into HubSpot as a customer.",
        {
            "email": ["tom@beckerbikes.de"],
            "firstname": ["Tom"],
            "lastname": ["", "Becker"],
            "lifecyclestage": ["", "customer"],
        },
        "",
    ),
    (
        "sf_lead",
        "Create a lead for jorge.mendez@acme-logistics.com, Jorge Mendez from Acme Logistics.",
        {
            "email": ["jorge.mendez@acme-logistics.com"],
            "firstName": ["", "Jorge"],
            "lastName": ["", "Mendez"],
            "company": ["", "Acme Logistics"],
        },
        "",
    ),
    (
        "sf_opportunity",
        "Move opportunity 0065g00000XyZ12 to Closed Won.",
        {"opportunityId": ["0065g00000XyZ12"], "stageName": ["Closed Won"]},
        "",
    ),
    (
        "gcal_event",
        "Put 'Dentist' in my calendar on 2025-09-03 from 14:00 to 15:00.",
        {
            "title": ["Dentist"],
            "start_time": ["2025-09-03T14:00:00", "2025-09-03T14:00"],
            "end_time": ["2025-09-03T15:00:00", "2025-09-03T15:00"],
        },
        "",
    ),
    (
        "fr_event",
        "Peux-tu créer un rendez-vous « Réunion budget » le 2025-06-12 de 10:00 à 11:30 ?",
        {
            "title": ["Réunion budget", "Reunion budget"],
            "start": ["2025-06-12T10:00:00", "2025-06-12T10:00"],
            "end": ["2025-06-12T11:30:00", "2025-06-12T11:30"],
        },
        "",
    ),
    ("ollama_weather", "weather Nairobi", {"city": ["Nairobi"]}, ""),
    ("ollama_time", "What time is it?", {}, ""),
    ("it_emails", "Ho delle email non lette?", {}, SECRETARY),
    (
        "it_calendar",
        "Cosa ho in calendario tra il 2025-05-05T09:00:00 e il 2025-05-05T18:00:00?",
        {
            "start_date_time": ["2025-05-05T09:00:00", "2025-05-05T09:00:00+01:00"],
            "end_date_time": ["2025-05-05T18:00:00", "2025-05-05T18:00:00+01:00"],
        },
        SECRETARY,
    ),
    (
        "es_command",
        "Ejecuta 'docker ps' por favor",
        {"command": ["docker ps"], "directory": ["", "/projects"]},
        "",
    ),
    ("zh_weather", "杭州今天天气怎么样？", {"location": ["杭州", "杭州，中国", "杭州,中国"]}, ""),
    ("zh_weather2", "帮我查一下北京市的天气", {"location": ["北京市", "北京"]}, ""),
    ("zh_time", "现在几点了？", {}, ""),
    ("cc_read", "Show me what's in src/config.yaml", {"file_path": ["src/config.yaml"]}, DEV),
    (
        "cc_write",
        "Write 'hello world' to notes/todo.txt",
        {"file_path": ["notes/todo.txt"], "content": ["hello world"]},
        DEV,
    ),
    ("fl_list", "list the files in /var/log", {"path": ["/var/log"]}, ""),
    ("fl_read", "Can you open README.md and read it to me?", {"path": ["README.md"]}, ""),
    (
        "gmail_search",
        "Find the emails from my landlord about the deposit",
        {"query": ["from:landlord deposit", "landlord deposit", "deposit from:landlord"]},
        "",
    ),
    (
        "send_email",
        "Email anna.k@example.org with subject 'Lunch' and say 'See you at noon!'",
        {"to_email": ["anna.k@example.org"], "subject": ["Lunch"], "body": ["See you at noon!"]},
        "",
    ),
    (
        "send_email",
        "pls send a mail to ops@initech.com, subject Server down, body: The staging server is down since 9am.",
        {
            "to_email": ["ops@initech.com"],
            "subject": ["Server down"],
            "body": ["The staging server is down since 9am."],
        },
        "",
    ),
    (
        "lucy_timer",
        "60秒後通知我：泡麵好了",
        {"time_sec": [60], "message": ["泡麵好了"], "userid": [""]},
        "",
    ),
    (
        "lucy_calendar",
        "Schedule 'Team sync' from 2025-07-01T10:00:00 to 2025-07-01T10:30:00.",
        {
            "summary": ["Team sync"],
            "start_datetime": ["2025-07-01T10:00:00"],
            "end_datetime": ["2025-07-01T10:30:00"],
            "timezone": ["", "Asia/Taipei"],
        },
        "",
    ),
    (
        "reminder",
        "Remind me to water the plants at 2025-04-20 08:00:00",
        {"task": ["water the plants"], "date": ["2025-04-20 08:00:00"]},
        "",
    ),
    ("cx_order", "Where is my order 88412?", {"order_id": ["88412"]}, SUPPORT),
    ("cx_policy", "What's your return policy?", {"policy_type": ["returns"]}, SUPPORT),
    ("cx_policy", "how long does shipping take?", {"policy_type": ["shipping"]}, SUPPORT),
    ("get_order", "Can you check order A1077 for me?", {"orderId": ["A1077"]}, SUPPORT),
    (
        "orders_by_email",
        "What did I order recently? My email is kim.lee@mail.com",
        {"email": ["kim.lee@mail.com"]},
        SUPPORT,
    ),
    (
        "cancel_order",
        "I want to cancel order ORD-5521, I ordered the wrong size.",
        {
            "order_id": ["ORD-5521"],
            "reason": ["", "I ordered the wrong size.", "wrong size", "ordered the wrong size"],
        },
        SUPPORT,
    ),
    (
        "add_to_cart",
        "Add 3 of item SKU-1142 to my cart",
        {"item_id": ["SKU-1142"], "quantity": ["", 3, 3.0]},
        "",
    ),
    (
        "product_details",
        "Tell me more about product P-3390",
        {"product_id": ["P-3390"]},
        "",
    ),
    (
        "set_lights",
        "Turn off the light with id 'kitchen'",
        {"id": ["kitchen"], "state": [False], "color": [""], "brightness": [""]},
        HOME,
    ),
    (
        "set_lights",
        "set the bedroom light brightness to 120",
        {"id": ["bedroom"], "state": ["", True], "color": [""], "brightness": [120]},
        HOME,
    ),
    (
        "es_device",
        "Enciende la luz habitación",
        {"device_name": ["luz habitación", "luz habitacion"], "state": ["encendido"]},
        "",
    ),
    (
        "es_device",
        "apaga el calefactor cocina porfa",
        {"device_name": ["calefactor cocina"], "state": ["apagado"]},
        "",
    ),
    (
        "es_websearch",
        "Busca en internet el horario del Museo del Prado",
        {
            "text": [
                "horario del Museo del Prado",
                "horario Museo del Prado",
                "Museo del Prado horario",
            ]
        },
        "",
    ),
    (
        "control_light",
        "Dim the lights to 30 and make them warm",
        {"brightness": [30, 30.0], "colorTemperature": ["warm"]},
        "",
    ),
    (
        "hostai_weather",
        "What's the weather like in Osaka, JP?",
        {"city": ["Osaka"], "country": ["", "JP"], "unit": ["", "celsius"]},
        "",
    ),
    (
        "flight_info",
        "Any flights from DUS to HAM?",
        {"origin": ["DUS"], "destination": ["HAM"]},
        "",
    ),
    (
        "cheapest_flight",
        "Whats the cheapest flight from Hamburg to Vienna",
        {"origin": ["Hamburg"], "destination": ["Vienna", "Wien"]},
        "",
    ),
    (
        "cheapest_flight",
        "Wie komme ich am günstigsten mit dem Flugzeug von Köln nach Berlin?",
        {"origin": ["Köln", "Koeln", "Cologne"], "destination": ["Berlin"]},
        "",
    ),
    ("weather_info", "Wie ist das Wetter in Hamburg?", {"city": ["Hamburg"]}, ""),
    (
        "add_reminder",
        "add a reminder: call mom on sunday",
        {"reminder_text": ["call mom on sunday", "call mom on Sunday"]},
        "",
    ),
    (
        "exchange_rate",
        "What's the exchange rate for EUR?",
        {"currency": ["EUR"]},
        "",
    ),
    (
        "ha_status",
        "what's the status of the living room light?",
        {"entity_id": ["living room light", "light.living_room"]},
        HOME,
    ),
    (
        "ha_on",
        "turn on the kitchen light",
        {"entity_id": ["kitchen light", "light.kitchen"]},
        HOME,
    ),
    ("ha_tv", "open spotify on my tv", {"button": ["spotify", "Spotify"]}, HOME),
    (
        "jira_create",
        "Create a Bug in project WEB: 'Login button does nothing on Safari'",
        {
            "project_key": ["WEB"],
            "issue_type": ["Bug"],
            "summary": ["Login button does nothing on Safari"],
        },
        "",
    ),
    ("jira_get", "Show me ticket OPS-1423", {"issue_key": ["OPS-1423"]}, ""),
    ("jp_username", "私の名前はハナコです。覚えてね。", {"username": ["ハナコ"]}, ""),
    (
        "jp_image",
        "夕焼けの海の絵を描いて",
        {"prompt": ["夕焼けの海", "夕焼けの海の絵"]},
        "",
    ),
    (
        "jp_wikipedia",
        "Look up 'Mount Fuji' on Wikipedia",
        {"prompt": ["Mount Fuji"]},
        "",
    ),
    (
        "jp_scraping",
        "Read this page for me: https://example.com/news/42",
        {"link": ["https://example.com/news/42"]},
        "",
    ),
    (
        "jp_delete_calendar",
        "Delete the calendar event with ID 7hq2lmk9",
        {"event_id": ["7hq2lmk9"]},
        "",
    ),
    (
        "jp_googlesearch",
        "google 'best ramen in Sapporo'",
        {"words": ["best ramen in Sapporo"]},
        "",
    ),
    (
        "save_memory",
        "Remember that I'm allergic to peanuts.",
        {
            "memory": [
                "allergic to peanuts",
                "I'm allergic to peanuts.",
                "The user is allergic to peanuts",
                "User is allergic to peanuts",
            ]
        },
        "",
    ),
    (
        "travel_search",
        "search the web for visa rules for Goa for UK citizens",
        {"query": ["visa rules for Goa for UK citizens"]},
        "",
    ),
    (
        "jp_add_calendar",
        "Add 'Piano lesson' at the music school, 2025-10-02T17:00:00+09:00 to 2025-10-02T18:00:00+09:00",
        {
            "summary": ["Piano lesson"],
            "start_time": ["2025-10-02T17:00:00+09:00"],
            "end_time": ["2025-10-02T18:00:00+09:00"],
            "description": ["", "Piano lesson"],
            "location": ["", "music school", "the music school"],
        },
        "",
    ),
]

IRRELEVANT: list[tuple[str, str, str]] = [
    ("babys_weather", "Book me a table for two at 8pm tonight.", ""),
    ("ctc_weather", "Who won the 2018 World Cup?", ""),
    ("recsys_weather", "Translate 'good morning' into German.", ""),
    ("clocktower_weather", "What's 15% of 240?", ""),
    ("taskmate_lead", "Delete every contact that has no phone number.", ""),
    ("hubspot_contact", "How many deals did we close last quarter?", ""),
    ("sf_opportunity", "Write me a haiku about autumn.", ""),
    ("gcal_event", "What's the capital of Australia?", ""),
    ("fr_event", "Quelle est la météo à Lyon demain ?", ""),
    ("ollama_time", "Tell me a joke about cats.", ""),
    ("it_emails", "Che tempo fa a Milano?", SECRETARY),
    ("es_command", "¿Quién escribió Don Quijote?", ""),
    ("zh_weather", "帮我写一首关于春天的诗", ""),
    ("zh_time", "北京到上海有多远？", ""),
    ("cc_read", "Explain what a Python decorator is.", DEV),
    ("fl_list", "how do I center a div in css", ""),
    ("send_email", "what's the weather in paris", ""),
    ("lucy_calendar", "把這段話翻譯成英文：我今天很開心", ""),
    ("reminder", "Whats the square root of 144?", ""),
    ("cx_order", "Do you sell gift cards?", SUPPORT),
    ("get_order", "I'd like to change the password of my account.", SUPPORT),
    ("cancel_order", "Can you recommend a good running shoe?", SUPPORT),
    ("add_to_cart", "When was the Eiffel Tower built?", ""),
    ("set_lights", "Play some jazz in the living room.", HOME),
    ("es_device", "¿Cuántos habitantes tiene Madrid?", ""),
    ("control_light", "Lock the front door.", ""),
    ("flight_info", "Recommend a hotel near the Hamburg airport.", ""),
    ("cheapest_flight", "How do I say thank you in Japanese?", ""),
    ("weather_info", "Erzähl mir einen Witz.", ""),
    ("exchange_rate", "Who is the CEO of Tesla?", ""),
    ("ha_on", "What's on my shopping list?", HOME),
    ("jira_create", "Summarize the plot of Hamlet in two sentences.", ""),
    ("jp_username", "東京タワーの高さは？", ""),
    ("jp_delete_calendar", "What's the population of Osaka?", ""),
    ("product_details", "hi! how r u today?", ""),
    ("orders_by_email", "Can I pay with PayPal?", SUPPORT),
    # the tool's own topic, an action it does not offer
    ("babys_weather", "What was the weather in Munich on my birthday last year?", ""),
    ("send_email", "Do I have any new emails from HR?", ""),
    ("get_order", "Cancel order A1090 please.", SUPPORT),
    ("fl_read", "Delete the file old_backup.zip", ""),
    ("cc_write", "What's the capital of Peru?", DEV),
    ("jira_get", "Create a new epic for the Q3 launch in project MKT.", ""),
    ("hostai_weather", "Set an alarm for 6:30 tomorrow.", ""),
    ("ha_tv", "What's the temperature in the bedroom?", HOME),
    ("sf_lead", "Which of our leads came from the webinar last week?", ""),
    ("jp_image", "円をドルに換算して：5000円", ""),
    ("add_reminder", "What reminders do I have for today?", ""),
    ("it_calendar", "Manda un'email a Luca per dire che arrivo tardi.", SECRETARY),
    ("weather_info", "Book me a flight to Hamburg.", ""),
]
