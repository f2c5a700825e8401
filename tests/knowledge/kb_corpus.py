"""A small corpus for the knowledge tests (written for them)."""

from __future__ import annotations

RETURNS = """# Returns

Items can be returned within 30 days of delivery. The item must be unused and in its
original packaging.

Refunds go back to the original payment method within 5 business days of the return
being received at the warehouse.

Opened software cannot be returned, but it can be exchanged for the same title."""

SHIPPING = """<html><head><title>Shipping options</title><style>p {color: red}</style>
<script>var tracking = "do not index";</script></head>
<body><nav>Home | Shipping | Contact</nav>
<h1>Shipping options</h1>
<p>Standard shipping takes 3 to 5 business days and costs $4.99.</p>
<p>Express shipping arrives the next business day when ordered before 2 pm.</p>
<pre>  track   ORDER-ID
  cancel  ORDER-ID</pre>
<p>We do not ship to P.O. boxes.</p></body></html>"""

WARRANTY = """Warranty

Every appliance carries a two-year warranty against manufacturing defects.

The warranty does not cover damage from drops, water or unauthorised repairs.

To claim, send the serial number and a photo of the defect to support."""
