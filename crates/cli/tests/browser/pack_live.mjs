// Scenario b: a pack page updates its live values without a reload, draws its charts (uPlot
// canvases) for each range, and shows one bar per cell.
import {
  check, login, log, markDocument, newPage, runScenario, shot, text, until,
} from './lib.mjs';

const CHARTS = ['chart-voltage', 'chart-current', 'chart-power', 'chart-soc', 'chart-temperature'];

async function chartsDrawn(page) {
  const drawn = {};
  for (const chart of CHARTS) {
    drawn[chart] = await page.locator(`[data-test=${chart}] canvas`).count();
  }
  return drawn;
}

await runScenario('pack_live', async (scenario) => {
  const { pack, cells } = scenario.facts;
  check(pack && cells > 0, 'BMSLINK_FACTS has no pack and cell count');
  const page = await newPage(scenario);
  await login(scenario, page, 'admin');
  const row = page.locator(`[data-test=fleet-table] [data-terminal="${pack}"]`);
  await row.waitFor();
  await row.locator('[data-test=open-pack]').click();
  await until(`the pack route of ${pack}`, () => page.url().includes(`#/pack/${pack}`));
  const sameDocument = await markDocument(page);

  const live = page.locator('[data-test=pack-live]');
  const updated = live.locator('[data-field=updated]');
  const firstAt = Number(await until('a data-at on the live values', () => updated.getAttribute('data-at')));
  check(Number.isFinite(firstAt) && firstAt > 0, `data-at is not a time: ${firstAt}`);
  const fields = ['voltage', 'current', 'power', 'soc'];
  const before = {};
  for (const field of fields) {
    before[field] = await until(`the live ${field}`, () => text(live.locator(`[data-field=${field}]`)));
  }
  await shot(scenario, page, 'pack');

  // Uploads arrive every few seconds: the page must show a newer one by itself.
  const newerAt = Number(await until('a newer upload on the page (data-at increasing)', async () => {
    const at = Number(await updated.getAttribute('data-at'));
    return at > firstAt ? at : null;
  }, 45000, 200));
  const after = {};
  for (const field of fields) {
    after[field] = await text(live.locator(`[data-field=${field}]`));
  }
  await sameDocument();
  log(`updated ${firstAt} -> ${newerAt}; before ${JSON.stringify(before)} after ${JSON.stringify(after)}`);

  const bars = page.locator('[data-test=cell-bar]');
  await until(`${cells} cell bars`, async () => (await bars.count()) === cells);
  const cellIndexes = await bars.evaluateAll((els) => els.map((e) => e.dataset.cell));
  check(new Set(cellIndexes).size === cells, `cell bars do not name ${cells} distinct cells: ${cellIndexes}`);

  const ranges = {};
  for (const range of ['hour', 'day', 'month']) {
    await page.locator(`[data-range=${range}]`).first().click();
    ranges[range] = await until(`every chart drawn for the ${range} range`, async () => {
      const drawn = await chartsDrawn(page);
      return Object.values(drawn).every((n) => n > 0) ? drawn : null;
    });
    await shot(scenario, page, `pack-${range}`);
  }
  // The last hour has uploads: its charts must show them, not the app's empty-range note.
  await page.locator('[data-range=hour]').first().click();
  await until('the hour charts with data', async () =>
    (await page.locator('[data-test=chart-voltage] .chart-empty:visible').count()) === 0
    && (await page.locator('[data-test=chart-voltage] canvas').count()) > 0, 15000);
  const charged = await until('the energy charged', () => text(page.locator('[data-test=energy-charged]')));
  const discharged = await until('the energy discharged', () => text(page.locator('[data-test=energy-discharged]')));
  await sameDocument();

  return {
    updated_from: firstAt,
    updated_to: newerAt,
    values_before: before,
    values_after: after,
    cell_bars: await bars.count(),
    charts: ranges,
    energy: { charged, discharged },
  };
});
