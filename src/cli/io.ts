/** The only place the CLI writes to the terminal. */
export const io = {
  out(text: string): void {
    process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  },
  err(text: string): void {
    process.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
  },
  interactive(): boolean {
    return process.stdin.isTTY === true && process.stdout.isTTY === true;
  },
};
