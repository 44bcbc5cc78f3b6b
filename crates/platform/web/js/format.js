// Numbers, units and times as operators read them.

const MINUS = '\u2212';

/** A number with fixed decimals, a real minus sign, or an en dash when missing. */
export function number(value, decimals = 0) {
  if (value === null || value === undefined || Number.isNaN(value)) return '\u2013';
  const text = Math.abs(value).toLocaleString('en-US', {
    minimumFractionDigits: decimals,
    maximumFractionDigits: decimals,
  });
  return value < 0 && Number(text.replace(/,/g, '')) !== 0 ? MINUS + text : text;
}

export const volts = (mv, decimals = 2) => (mv == null ? '\u2013' : `${number(mv / 1000, decimals)} V`);
export const amps = (ma, decimals = 1) => (ma == null ? '\u2013' : `${number(ma / 1000, decimals)} A`);
export const percent = (value) => (value == null ? '\u2013' : `${number(value, 0)} %`);
export const celsius = (value) => (value == null ? '\u2013' : `${number(value, 0)} \u00b0C`);
export const millivolts = (mv) => (mv == null ? '\u2013' : `${number(mv, 0)} mV`);

/** Watts as W below 1 kW, else kW. */
export function watts(w) {
  if (w == null) return '\u2013';
  return Math.abs(w) >= 1000 ? `${number(w / 1000, 2)} kW` : `${number(w, 0)} W`;
}

/** Watt-hours as Wh below 1 kWh, else kWh (MWh from 1000 kWh). */
export function energy(wh) {
  if (wh == null) return '\u2013';
  if (Math.abs(wh) >= 1e6) return `${number(wh / 1e6, 2)} MWh`;
  return Math.abs(wh) >= 1000 ? `${number(wh / 1000, 2)} kWh` : `${number(wh, 0)} Wh`;
}

/** "12 s ago", "5 min ago", "3 h ago", "2 d ago" (or "just now"). */
export function ago(ms, now = Date.now()) {
  if (!ms) return 'never';
  const seconds = Math.round((now - ms) / 1000);
  if (seconds < 2) return 'just now';
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

/** "3 s", "4 min 10 s", "2 h 5 min", "3 d 4 h". */
export function duration(ms) {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** Local date and time, "2026-11-22 14:05:09". */
export function dateTime(ms) {
  if (!ms) return '\u2013';
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
    + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

const ACRONYMS = { soc: 'SOC', mosfet: 'MOSFET', id: 'ID', pcs: 'PCS' };

/** "cell_over_voltage_protection" -> "Cell over voltage protection" ("mosfet" -> "MOSFET"). */
export function humanize(name) {
  const words = String(name).split('_').filter(Boolean).map((word) => ACRONYMS[word] ?? word);
  const text = words.join(' ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Lowest and highest of the reported temperatures, "24 – 31 °C". */
export function temperatureRange(temperatures) {
  const values = Object.values(temperatures || {}).filter((t) => t !== null && t !== undefined);
  if (!values.length) return '\u2013';
  const low = Math.min(...values);
  const high = Math.max(...values);
  return low === high ? celsius(low) : `${number(low)} \u2013 ${celsius(high)}`;
}
