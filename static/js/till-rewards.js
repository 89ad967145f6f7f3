// What a card's stamps in a program are worth at the till: the rewards they cover now (the main
// reward and the lower levels), the next one to collect for, and a stamp and its bonuses in
// plain words ("+1, +1 Happy Hour"). Pure: no page, no network.
import { T, fmt } from "./till-text.js";

/**
 * Every reward the balance covers in program `p`, the largest first:
 * [{program, level (null: the main reward), stamps, text, count}]. `count` is how many times
 * over (the main reward only; a level is one choice among them).
 */
export function dueRewards(p, b) {
  if (!p || !b) return [];
  const due = [];
  if (b.stamps >= p.stamps_required) {
    const count = Math.max(b.rewards_available || 0, 1);
    due.push({ program: p, level: null, stamps: p.stamps_required, text: p.reward, count });
  }
  for (const level of p.levels || []) {
    if (b.stamps >= level.stamps) {
      due.push({ program: p, level, stamps: level.stamps, text: level.reward, count: 1 });
    }
  }
  return due.sort((x, y) => y.stamps - x.stamps);
}

/** The nearest reward still ahead: {left: stamps to go, text}. */
export function nextGoal(p, b) {
  const stamps = b ? b.stamps : 0;
  const ahead = [...(p.levels || []).map((l) => ({ stamps: l.stamps, text: l.reward })),
    { stamps: p.stamps_required, text: p.reward }]
    .filter((goal) => goal.stamps > stamps)
    .sort((x, y) => x.stamps - y.stamps);
  if (ahead.length) return { left: ahead[0].stamps - stamps, text: ahead[0].text };
  // Past the main reward (it is due): counting towards the one after it.
  return { left: p.stamps_required - (stamps % p.stamps_required), text: p.reward };
}

/** "+1" or "+1, +1 Happy Hour, +2 Stammgast": a stamp and the bonuses it brought. */
export function stampWords(count, bonus = []) {
  return [`+${count}`, ...bonus.map((b) => fmt(T.bonus_item, b.stamps, b.title))].join(", ");
}

/** What the redeem button for a reward says; one of another program (`aside`) names it. */
export function redeemLabel(reward) {
  const p = reward.program;
  if (reward.aside) return fmt(p.ended ? T.redeem_ended : T.redeem_other, reward.text, p.name);
  if ((p.levels || []).length) return fmt(T.redeem_level, reward.text, reward.stamps);
  return fmt(T.redeem, reward.text);
}

/**
 * The largest count a +N button offers in program `p`: never more than one whole reward's
 * worth (no +5 on a 3-stamp card) nor the program's limit per scan. Digit keys still reach the
 * limit per scan.
 */
export function sensibleCounts(p) {
  return Math.max(1, Math.min(p.max_stamps_per_scan, p.stamps_required));
}
