import type { MenuItemConstructorOptions } from 'electron';
import { describe, expect, it } from 'vitest';
import { ACTIONS } from '../renderer/actions.js';
import { MENU_ACTIONS, type MenuAction } from './channels.js';
import { menuTemplate } from './menu.js';

function build(platform: NodeJS.Platform) {
  const sent: MenuAction[] = [];
  const template = menuTemplate({
    platform,
    dev: false,
    appName: 'IP-Adapter Studio',
    send: (a) => void sent.push(a),
    openOutputFolder: () => {},
    openModelsFolder: () => {},
  });
  const items: MenuItemConstructorOptions[] = [];
  const walk = (list: MenuItemConstructorOptions[]) => list.forEach((i) => (items.push(i), Array.isArray(i.submenu) && walk(i.submenu)));
  walk(template);
  return { template, items, sent };
}

describe('application menu', () => {
  it('names only actions the renderer registers', () => {
    const names = new Set(ACTIONS.map((a) => a.name));
    for (const a of MENU_ACTIONS) expect(names.has(a), a).toBe(true);
  });

  for (const platform of ['linux', 'win32', 'darwin'] as const) {
    it(`${platform}: File/Edit/Run hold the editor's commands, and each item sends its action`, () => {
      const { template, items, sent } = build(platform);
      const labels = template.map((m) => m.label ?? m.role);
      expect(labels).toEqual(expect.arrayContaining(['&File', '&Edit', '&View', '&Run', 'help']));
      const sub = (label: string) => (template.find((m) => m.label === label)!.submenu as MenuItemConstructorOptions[]).map((i) => i.id).filter(Boolean);
      expect(sub('&File')).toEqual(expect.arrayContaining(['open', 'save', 'saveAs', 'export']));
      expect(sub('&Edit')).toEqual(expect.arrayContaining(['undo', 'redo', 'copy', 'paste', 'delete']));
      expect(sub('&Run')).toEqual(['run', 'cancel']);
      const actionItems = items.filter((i) => i.id && (MENU_ACTIONS as readonly string[]).includes(i.id));
      expect(new Set(actionItems.map((i) => i.id))).toEqual(new Set(MENU_ACTIONS));
      for (const i of actionItems) (i.click as () => void)();
      expect(sent).toEqual(actionItems.map((i) => i.id));
      // Shortcuts belong to the renderer (it knows when a text field has focus): shown, never registered.
      for (const i of actionItems) if (i.accelerator) expect(i.registerAccelerator, i.id).toBe(false);
      if (platform === 'darwin') {
        for (const i of actionItems) if (i.accelerator) expect(i.accelerator, i.id).toMatch(/CmdOrCtrl/);
      } else {
        expect(items.find((i) => i.id === 'fitView')!.accelerator).toBe('F');
      }
      expect(items.find((i) => i.id === 'save')!.accelerator).toBe('CmdOrCtrl+S');
      expect(items.some((i) => i.role === 'toggleDevTools')).toBe(false);
    });
  }
});
