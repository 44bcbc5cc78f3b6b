// Faults on a simulated BMS through the platform's API: the charge high-temperature
// protection (0xA3) written below the pack's temperature makes the BMS trip and set its battery
// over-temperature warning bit (a `bms` alarm on the platform); written back, it recovers.
// Used by the alarm scenario (alarm_live.mjs) and the alarm latency figure
// (crates/platform/benches/alarm_latency.mjs).
import { api, check } from './lib.mjs';

export const SETTING = 'charge_high_temperature_protection';

/// The pack's hottest battery temperature and the BMS's threshold, read through the API.
export async function temperatureAndThreshold(page, terminal) {
  const detail = await api(page, 'GET', `/api/terminals/${terminal}`);
  check(detail.status === 200, `GET /api/terminals/${terminal}: ${detail.status} ${detail.text}`);
  const t = detail.json?.latest?.temperatures ?? {};
  const hottest = Math.max(...[t.battery, t.mosfet, t.box].filter((v) => typeof v === 'number'));
  check(Number.isFinite(hottest), `no temperatures in the latest upload of ${terminal}`);
  const settings = await api(page, 'GET', `/api/terminals/${terminal}/settings`);
  check(settings.status === 200, `reading the settings of ${terminal}: ${settings.status} ${settings.text}`);
  const threshold = Number(settings.json?.values?.[SETTING]?.value);
  check(Number.isFinite(threshold), `no ${SETTING} in ${settings.text.slice(0, 300)}`);
  return { hottest, threshold, battery: t.battery };
}

/// Writes the threshold through the API with the page's (operator's) session.
export async function writeThreshold(page, terminal, value, password) {
  const body = { values: { [SETTING]: String(value) } };
  if (password) {
    body.password = password;
  }
  const write = await api(page, 'PATCH', `/api/terminals/${terminal}/settings`, body);
  check(write.status === 200 && write.json?.ok === true,
    `writing ${SETTING}=${value} to ${terminal}: ${write.status} ${write.text}`);
  return write.json;
}

/// A threshold the pack at `temperature` degC is above by 10 K (the BMS trips after its
/// temperature delay; 0 at the least, the setting's range).
export function faultThreshold(temperature) {
  return Math.max(0, Math.floor(temperature) - 10);
}
