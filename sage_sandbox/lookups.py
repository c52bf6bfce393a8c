"""Static Sage lookup values (ids and display names) the sandbox refers to."""

CONTACT_TYPES = {"CUSTOMER": "Customer", "VENDOR": "Supplier"}
ADDRESS_TYPES = {"ACCOUNTS": "Accounts", "SALES": "Sales", "PURCHASING": "Purchasing", "DELIVERY": "Delivery"}
CONTACT_PERSON_TYPES = {"ACCOUNTS": "Accounts", "SALES": "Sales", "PURCHASING": "Purchasing"}
BASE_CURRENCY = "GBP"  # the seeded UK businesses keep their books in pounds
# currency id -> (display name, units per 1 GBP)
CURRENCIES = {"GBP": ("Pound Sterling (GBP)", 1.0), "EUR": ("Euro (EUR)", 1.17), "USD": ("US Dollar (USD)", 1.27)}
STATUSES = {"DRAFT": "Draft", "PRO_FORMA": "Pro-Forma", "UNPAID": "Unpaid", "PART_PAID": "Part Paid",
            "PAID": "Paid", "VOID": "Void", "DISPUTED": "Disputed"}
# tax rate id -> (display name, rate)
TAX_RATES = {"GB_STANDARD": ("Standard 20.00%", 0.20), "GB_LOWER": ("Lower 5.00%", 0.05),
             "GB_ZERO": ("Zero 0.00%", 0.0), "GB_EXEMPT": ("Exempt 0.00%", 0.0), "GB_NO_TAX": ("No Tax", 0.0)}
COUNTRIES = {"GB": "United Kingdom (GB)", "IE": "Ireland (IE)", "FR": "France (FR)", "DE": "Germany (DE)",
             "ES": "Spain (ES)", "NL": "Netherlands (NL)", "US": "United States (US)"}
EU_COUNTRIES = {"FR", "DE", "ES", "NL"}


def country_group(country_id):
    """Return the Sage country group id for an ISO country code."""
    if country_id in ("GB", "IE"):
        return "GBIE"
    if country_id in EU_COUNTRIES:
        return "EU"
    if country_id == "US":
        return "US"
    return "ALL"


def base(kind, key, label):
    """Build a ``Base`` reference ``{id, displayed_as, $path}`` for a lookup value."""
    return {"id": key, "displayed_as": label, "$path": f"/{kind}/{key}"}
