/** @odoo-module **/
/**
 * What the Python side of a tour (tests/test_tours.py) tells its steps: the names, amounts and
 * addresses it created, set as ``odoo.sageTourData`` just before ``odoo.startTour``.
 */

export function sageTourData(tourName) {
    const data = window.odoo && window.odoo.sageTourData;
    if (!data) {
        throw new Error(`${tourName}: odoo.sageTourData is missing; start it from test_tours.py`);
    }
    return data;
}

/** A CSS string literal for :contains(...), whatever quotes the value holds. */
export function quoted(text) {
    return JSON.stringify(String(text));
}
