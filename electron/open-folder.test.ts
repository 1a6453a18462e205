import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openFolderOnly } from './files.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ipa-open-folder-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('Open Output / Models Folder', () => {
  it('hands only a folder to the shell; a program, a document or a missing path is refused', async () => {
    const opened: string[] = [];
    const open = async (p: string) => (opened.push(p), '');
    const program = path.join(dir, 'run.exe');
    fs.writeFileSync(program, 'MZ');
    fs.symlinkSync(program, path.join(dir, 'link-to-program'));
    fs.symlinkSync(dir, path.join(dir, 'link-to-folder'));
    expect(await openFolderOnly(program, open)).toMatch(/run\.exe is not a folder/);
    expect(await openFolderOnly(path.join(dir, 'link-to-program'), open)).toMatch(/is not a folder/);
    expect(await openFolderOnly(path.join(dir, 'missing'), open)).toMatch(/does not exist/);
    expect(opened).toEqual([]);
    expect(await openFolderOnly(dir, open)).toBeNull();
    expect(await openFolderOnly(path.join(dir, 'link-to-folder'), open)).toBeNull();
    expect(opened).toEqual([dir, path.join(dir, 'link-to-folder')]);
    expect(await openFolderOnly(dir, async () => 'no file manager')).toMatch(/could not open .*: no file manager/);
  });
});
