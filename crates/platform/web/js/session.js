// Who is logged in, and what their role lets them do.

const RANKS = { viewer: 0, operator: 1, admin: 2 };

let user = null;

export function setUser(next) {
  user = next;
}

export function currentUser() {
  return user;
}

/** Whether the user's role is at least `role`. */
export function atLeast(role) {
  return Boolean(user) && (RANKS[user.role] ?? -1) >= RANKS[role];
}

/** Operators and admins change settings, acknowledge alarms, rename and approve. */
export const canWrite = () => atLeast('operator');
export const isAdmin = () => atLeast('admin');
